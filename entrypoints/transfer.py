"""`transfer`: fine-tune a pretrain run's model on an English task, test it zero-shot in every
language (paper §5.1, Table 3), as one MLflow run linked to the pretrain run. `xnli` is this
with task=xnli."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click
import mlflow
import numpy as np
import torch
from mlflow.tracking import MlflowClient

from entrypoints.common import OPTIONAL_INT, note_launcher, run_command, start_run
from entrypoints.prepare import experiment_of, languages_of
from minimult_ml import figures, genre, nli, tasks, tracking, transfer
from minimult_ml.errors import InputError
from minimult_ml.experiments import TrainConfig
from minimult_ml.training import CONFIG_FILE, input_config
from minimult_ml.vocab import Tokenizers

SOURCE = "en"  # the fine-tuning language of zero-shot transfer


def checkpoint_folder(run_id: str, step: int | None) -> Path:
    """The run's final model, or its checkpoint at `step`."""
    path = "model" if step is None else f"checkpoints/step-{step}"
    try:
        return tracking.download(run_id, path)
    except Exception:  # the artifact repository says "not found" in its own ways
        raise InputError(f"run {run_id} has no {path}: pass a finished pretrain run, or the "
                         "step of one of its checkpoints") from None


def bible_editions(data_run_id: str) -> tuple[dict[str, str], int]:
    """The Bible edition of each language of a prepare run, and its chapter-split seed."""
    params = MlflowClient().get_run(data_run_id).data.params
    if params.get("source") != "bible" or not params.get("editions"):
        raise InputError(f"the pretrain run's data (prepare run {data_run_id}, languages "
                         f"{params.get('languages')}, source {params.get('source')}) are not the "
                         "Bibles' real languages: task bible-genre needs a real-track pretrain "
                         "run prepared with source=bible")
    editions = dict(item.split(":", 1) for item in params["editions"].split(","))
    return editions, int(params.get("seed", 0))


def in_language_codes(spec: str, task: tasks.Task, codes: list[str]) -> list[str]:
    """The languages whose in-language bound is measured: all, none or a list (default: all
    where the task has training data in every language, else none)."""
    spec = spec.strip() or ("all" if task.every_language else "none")
    chosen = {"all": list(codes), "none": []}.get(
        spec, [c.strip() for c in spec.split(",") if c.strip()])
    if chosen and not task.every_language:
        raise InputError(f"in_language={spec}: task {task.name} has training data in English "
                         "only; pass in_language=none")
    outside = [c for c in chosen if c not in codes]
    if outside:
        raise InputError(f"in_language: {', '.join(outside)} not among the tested languages "
                         f"{', '.join(codes)}")
    return chosen


def run_transfer(run_id: str, step: int | None, task_name: str, train_spec: str, test_spec: str,
                 languages: list[str], train_examples: int, in_language: str,
                 config: transfer.FinetuneConfig) -> str:
    """Fine-tune the pretrain run's model on the English task, test it zero-shot in
    `languages` (default: all of the model's); with the majority-class baseline and, where
    asked, the in-language bound. Returns the new run's id."""
    task = tasks.task(task_name)
    labels = task.labels
    pretrain_run = tracking.get_run(run_id, "pretrain")
    if train_examples < 0:
        raise InputError(f"train_examples must be ≥ 0 (0 = all), got {train_examples}")
    config.validate()
    data_run_id = pretrain_run.data.tags["data_run_id"]
    known = languages_of(data_run_id)
    codes = languages or known
    transfer.check_languages(codes, known, SOURCE)
    bounds = in_language_codes(in_language, task, codes)
    params: dict[str, object] = {}
    if task.name == "xnli":
        train = nli.load_train(train_spec)
        train = train.head(train_examples) if train_examples else train
        dev, test = None, nli.load_test(test_spec, codes)
        params |= {"train": train_spec, "test": test_spec}
    else:
        editions, split_seed = bible_editions(data_run_id)
        train = genre.split_examples(editions[SOURCE], "train", split_seed)
        train = train.sample(train_examples, config.seed) if train_examples else train
        dev = genre.split_examples(editions[SOURCE], "dev", split_seed)
        _, test = genre.test_sets({c: editions[c] for c in codes}, split_seed)
        params |= {"editions": ",".join(f"{c}:{editions[c]}" for c in codes),
                   "split_seed": split_seed}
    # Everything checked: now the (large) checkpoint.
    folder = checkpoint_folder(run_id, step)
    tokenizers = Tokenizers.load(folder)
    train_config = TrainConfig(**json.loads((folder / CONFIG_FILE).read_text()))
    inputs = input_config(train_config, tokenizers.languages)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    tags = {"step": "transfer", "task": task.name, "pretrain_run_id": run_id,
            "exp": train_config.exp, "paper_id": train_config.paper_id,
            "seed": str(train_config.seed), "track": train_config.track}
    params |= {"run_id": run_id, "task": task.name, "checkpoint": "model" if step is None else step,
               "languages": ",".join(codes), "train_examples": len(train),
               "dev_examples": 0 if dev is None else len(dev),
               "in_language": ",".join(bounds) or "none", "epochs": config.epochs,
               "batch_size": config.batch_size, "lr": config.lr, "seed": config.seed}
    name = f"{task.name}-{train_config.run_name}"
    logged = params | tracking.provenance() | {"device": device.type}
    with start_run(name, tags, True, logged, experiment_of(train_config.track)) as run, \
            tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        (out / "figures").mkdir()
        model = transfer.finetune(folder, tokenizers, inputs, train, len(labels), config,
                                  device, dev, SOURCE, log=mlflow.log_metrics)
        majority = transfer.majority_label(train) if task.every_language else None
        report = transfer.test(model, tokenizers, inputs, test, len(labels), device, majority)
        model.save_pretrained(out / "model")
        for code in bounds:
            # The bound: fine-tuned (as many examples) and selected in the language itself, on
            # its own train and dev chapters; in English it is the zero-shot model itself.
            if code == SOURCE:
                report[code]["in_language"] = report[code]["accuracy"]
                continue
            own = genre.split_examples(editions[code], "train", split_seed).sample(
                len(train), config.seed)
            own_dev = genre.split_examples(editions[code], "dev", split_seed)
            bound_model = transfer.finetune(folder, tokenizers, inputs, own, len(labels), config,
                                            device, own_dev, code, log=mlflow.log_metrics,
                                            log_prefix=f"finetune_{code}")
            report[code]["in_language"] = transfer.test(
                bound_model, tokenizers, inputs, {code: test[code]}, len(labels),
                device)[code]["accuracy"]
        for code, r in report.items():
            mlflow.log_metric(task.accuracy(code), r["accuracy"])
            for kind in ("majority", "in_language"):
                if kind in r:
                    mlflow.log_metric(task.accuracy(code, kind), r[kind])
            figures.confusion_matrix(np.array(r["confusion"]), labels,
                                     out / "figures" / f"confusion_{code}.png",
                                     f"{task.title} {code} (zero-shot from {SOURCE}): "
                                     f"accuracy {r['accuracy']:.3f}")
            click.echo(f"{task.name} {code:8s} zero-shot {r['accuracy']:.3f}"
                       + (f"  majority {r['majority']:.3f}" if "majority" in r else "")
                       + (f"  in-language {r['in_language']:.3f}" if "in_language" in r else "")
                       + f"  ({r['examples']} examples)")
        (out / f"{task.name}.json").write_text(json.dumps(
            {"task": task.name, "labels": labels, "source": SOURCE, "languages": report}, indent=2))
        tokenizers.save(out / "model")
        (out / "model" / CONFIG_FILE).write_text((folder / CONFIG_FILE).read_text())
        mlflow.log_artifacts(tmp)
    note_launcher(f"{task.name} transfer of pretrain run {run_id}: run {run.info.run_id}.",
                  run.info.run_id)
    click.echo(f"transfer: finished run {run.info.run_id}")
    return run.info.run_id


def options(command: click.Command) -> click.Command:
    """The options `transfer` and `xnli` share."""
    for option in reversed([
        click.option("--run-id", required=True, help="The pretrain run whose model is "
                                                     "fine-tuned."),
        click.option("--step", type=OPTIONAL_INT,
                     help="A checkpoint step (default: the final model)."),
        click.option("--train", "train_spec", default="hub", show_default=True,
                     help="xnli: English NLI training data: hub, multinli:PATH or "
                          "xnli-mt:PATH."),
        click.option("--test", "test_spec", default="hub", show_default=True,
                     help="xnli: XNLI test data: hub or xnli-tsv:PATH."),
        click.option("--languages", default="",
                     help="Languages tested, comma-separated (default: all of the model's)."),
        click.option("--train-examples", type=int, default=0, show_default=True,
                     help="Fine-tune on N examples only (0 = all): xnli the first N, "
                          "bible-genre N drawn at random."),
        click.option("--epochs", type=float, default=3.0, show_default=True),
        click.option("--batch-size", type=int, default=32, show_default=True),
        click.option("--lr", type=float, default=2e-5, show_default=True),
        click.option("--seed", type=int, default=42, show_default=True)]):
        command = option(command)
    return command


@click.command("transfer")
@click.option("--task", default="bible-genre", show_default=True,
              help=f"The task: {', '.join(tasks.TASKS)}.")
@click.option("--in-language", default="",
              help="Languages whose in-language bound (fine-tuned and tested in the language) "
                   "is measured: all, none or codes (default: all for bible-genre, none for "
                   "xnli).")
@options
def command(task: str, in_language: str, run_id: str, step: int | None, train_spec: str,
            test_spec: str, languages: str, train_examples: int, epochs: float,
            batch_size: int, lr: float, seed: int) -> None:
    """Zero-shot cross-lingual transfer of a pretrained model (bible-genre or xnli)."""
    codes = [c.strip() for c in languages.split(",") if c.strip()]
    run_transfer(run_id, step, task, train_spec, test_spec, codes, train_examples, in_language,
                 transfer.FinetuneConfig(epochs, batch_size, lr, seed=seed))


if __name__ == "__main__":
    run_command(command)
