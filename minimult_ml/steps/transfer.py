"""The transfer step: a pretrain run's model and a task → its run (fine-tuned on the English
task, tested zero-shot in every language; paper §5.1, Table 3), linked to the pretrain run. A
finished run with the same parameters, made by the same code, is reused."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click
import mlflow
import numpy as np
import torch
from mlflow.tracking import MlflowClient

from minimult_ml import figures, genre, nli, tasks, tracking, transfer
from minimult_ml.errors import InputError
from minimult_ml.experiments import CONFIG_FILE, load_config
from minimult_ml.inputs import InputConfig, input_config
from minimult_ml.steps import runs
from minimult_ml.steps.prepare import languages_of
from minimult_ml.vocab import Tokenizers

STEP = "transfer"
SOURCE = "en"  # the fine-tuning language of zero-shot transfer


def checkpoint_folder(run_id: str, step: int | None) -> Path:
    """The run's final model, or its checkpoint at `step`."""
    path = "model" if step is None else f"checkpoints/step-{step}"
    if not tracking.artifact_exists(run_id, path):
        raise InputError(f"run {run_id} has no {path}: pass a finished pretrain run, or the "
                         "step of one of its checkpoints")
    return tracking.download(run_id, path)


def bible_split(data_run_id: str) -> tuple[dict[str, str], int] | None:
    """The Bible edition of each language of a prepare run and its chapter-split seed; None
    when the run did not prepare the Bibles."""
    with tracking.server_errors():
        params = MlflowClient().get_run(data_run_id).data.params
    if params.get("source") != "bible" or not params.get("editions"):
        return None
    editions = dict(item.split(":", 1) for item in params["editions"].split(","))
    return editions, int(params.get("seed", 0))


def bible_editions(data_run_id: str) -> tuple[dict[str, str], int]:
    """`bible_split` of a pretrain run's data, which must be the Bibles."""
    if split := bible_split(data_run_id):
        return split
    raise InputError(f"the pretrain run's data (prepare run {data_run_id}) are not the Bibles' "
                     "real languages: task bible-genre needs a real-track pretrain run prepared "
                     "with source=bible")


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


def task_data(task: tasks.Task, data_run_id: str, codes: list[str], train_spec: str,
              test_spec: str, train_examples: int, seed: int
              ) -> tuple[transfer.Examples, transfer.Examples | None,
                         dict[str, transfer.Examples], dict[str, object]]:
    """The English training (and dev) examples, each language's test examples, and the params
    that say where they come from."""
    if task.name == "xnli":
        train = nli.load_train(train_spec)
        train = train.head(train_examples) if train_examples else train
        return train, None, nli.load_test(test_spec, codes), {"train": train_spec,
                                                              "test": test_spec}
    editions, split_seed = bible_editions(data_run_id)
    train = genre.split_examples(editions[SOURCE], "train", split_seed)
    train = train.sample(train_examples, seed) if train_examples else train
    dev = genre.split_examples(editions[SOURCE], "dev", split_seed)
    _, test = genre.test_sets({c: editions[c] for c in codes}, split_seed)
    return train, dev, test, {"editions": ",".join(f"{c}:{editions[c]}" for c in codes),
                              "split_seed": split_seed}


def transfer_run(run_id: str, step: int | None, task_name: str, train_spec: str,
                 test_spec: str, languages: list[str], train_examples: int, in_language: str,
                 config: transfer.FinetuneConfig, reuse: str = "same-code") -> str:
    """Fine-tune the pretrain run's model (its final one, or checkpoint `step`) on the English
    task, test it zero-shot in `languages` (default: all of the model's), with the majority-class
    baseline and, where asked, the in-language bound; the id of the run (a finished one with the
    same parameters and code is reused)."""
    task = tasks.task(task_name)
    pretrain_run = tracking.get_run(run_id, "pretrain")
    if train_examples < 0:
        raise InputError(f"train_examples must be ≥ 0 (0 = all), got {train_examples}")
    config.validate()
    runs.check_reuse(reuse)
    data_run_id = pretrain_run.data.tags["data_run_id"]
    known = languages_of(data_run_id)
    codes = languages or known
    transfer.check_languages(codes, known, SOURCE)
    bounds = in_language_codes(in_language, task, codes)
    train, dev, test, source = task_data(task, data_run_id, codes, train_spec, test_spec,
                                         train_examples, config.seed)
    tags = {"task": task.name, "pretrain_run_id": run_id}
    params = source | {"run_id": run_id, "task": task.name,
                       "checkpoint": "model" if step is None else step,
                       "languages": ",".join(codes), "train_examples": train_examples,
                       "in_language": ",".join(bounds) or "none", "epochs": config.epochs,
                       "batch_size": config.batch_size, "lr": config.lr, "seed": config.seed}
    experiment = runs.experiment_of(pretrain_run.data.tags.get("track", "real"))
    if found := runs.find_finished(STEP, params, experiment, reuse):
        return runs.reused(STEP, found)
    # Everything checked: now the (large) checkpoint.
    folder = checkpoint_folder(run_id, step)
    tokenizers = Tokenizers.load(folder)
    train_config = load_config(folder)
    inputs = input_config(train_config, tokenizers.languages)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tags |= {"exp": train_config.exp, "paper_id": train_config.paper_id,
             "seed": str(train_config.seed), "track": train_config.track}
    description = (f"{task.title} zero-shot transfer of pretrain run {run_id} "
                   f"({train_config.run_name}): fine-tuned on {len(train)} English examples, "
                   f"tested in {', '.join(codes)}"
                   + (f"; in-language bound in {', '.join(bounds)}." if bounds else "."))
    with runs.start(STEP, f"{task.name}-{train_config.run_name}", tags,
                    params | {"device": device.type}, experiment, description) as run, \
            tracking.server_errors(), tempfile.TemporaryDirectory() as tmp:
        mlflow.log_metrics({"train_size": len(train), "dev_size": 0 if dev is None else len(dev)})
        model = transfer.finetune(folder, tokenizers, inputs, train, len(task.labels), config,
                                  device, dev, SOURCE, log=mlflow.log_metrics)
        majority = transfer.majority_label(train) if task.every_language else None
        report = transfer.test(model, tokenizers, inputs, test, len(task.labels), device,
                               majority)
        for code in bounds:
            report[code]["in_language"] = (
                report[code]["accuracy"] if code == SOURCE else
                in_language_accuracy(folder, tokenizers, inputs, task, data_run_id, code,
                                     len(train), test[code], config, device))
        out = Path(tmp)
        write_report(out, task, report)
        model.save_pretrained(out / "model")
        tokenizers.save(out / "model")
        (out / "model" / CONFIG_FILE).write_text((folder / CONFIG_FILE).read_text())
        mlflow.log_artifacts(tmp)
    click.echo(f"transfer: finished run {run.info.run_id}")
    return run.info.run_id


def in_language_accuracy(folder: Path, tokenizers: Tokenizers, inputs: InputConfig,
                         task: tasks.Task, data_run_id: str, code: str, size: int,
                         test: transfer.Examples, config: transfer.FinetuneConfig,
                         device: torch.device) -> float:
    """The in-language bound: fine-tuned on as many examples of the language's own train
    chapters, selected on its own dev chapters, tested on its test chapters."""
    editions, split_seed = bible_editions(data_run_id)
    own = genre.split_examples(editions[code], "train", split_seed).sample(size, config.seed)
    own_dev = genre.split_examples(editions[code], "dev", split_seed)
    model = transfer.finetune(folder, tokenizers, inputs, own, len(task.labels), config, device,
                              own_dev, code, log=mlflow.log_metrics,
                              log_prefix=f"finetune_{code}")
    return transfer.test(model, tokenizers, inputs, {code: test}, len(task.labels),
                         device)[code]["accuracy"]


def write_report(out: Path, task: tasks.Task, report: dict[str, dict]) -> None:
    """Log each language's accuracies; write its confusion matrix and `<task>.json`."""
    (out / "figures").mkdir()
    for code, r in report.items():
        mlflow.log_metric(task.accuracy(code), r["accuracy"])
        for kind in ("majority", "in_language"):
            if kind in r:
                mlflow.log_metric(task.accuracy(code, kind), r[kind])
        figures.confusion_matrix(np.array(r["confusion"]), task.labels,
                                 out / "figures" / f"confusion_{code}.png",
                                 f"{task.title} {code} (zero-shot from {SOURCE}): accuracy "
                                 f"{r['accuracy']:.3f}", task.examples)
        click.echo(f"{task.name} {code:8s} zero-shot {r['accuracy']:.3f}"
                   + (f"  majority {r['majority']:.3f}" if "majority" in r else "")
                   + (f"  in-language {r['in_language']:.3f}" if "in_language" in r else "")
                   + f"  ({r['examples']} examples)")
    (out / f"{task.name}.json").write_text(json.dumps(
        {"task": task.name, "labels": task.labels, "source": SOURCE, "languages": report},
        indent=2))
