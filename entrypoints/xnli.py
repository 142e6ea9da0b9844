"""`xnli`: fine-tune a pretrain run's model on English NLI, test it zero-shot in every language
(paper §5.1, Table 3), as one MLflow run linked to the pretrain run."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click
import mlflow
import numpy as np
import torch

from entrypoints.common import OPTIONAL_INT, note_launcher, run_command, start_run
from entrypoints.prepare import experiment_of, languages_of
from minimult_ml import figures, nli, tracking
from minimult_ml.errors import InputError
from minimult_ml.experiments import TrainConfig
from minimult_ml.training import CONFIG_FILE, input_config
from minimult_ml.vocab import Tokenizers


def checkpoint_folder(run_id: str, step: int | None) -> Path:
    """The run's final model, or its checkpoint at `step`."""
    path = "model" if step is None else f"checkpoints/step-{step}"
    try:
        return tracking.download(run_id, path)
    except Exception:  # the artifact repository says "not found" in its own ways
        raise InputError(f"run {run_id} has no {path}: pass a finished pretrain run, or the "
                         "step of one of its checkpoints") from None


@click.command("xnli")
@click.option("--run-id", required=True, help="The pretrain run whose model is fine-tuned.")
@click.option("--step", type=OPTIONAL_INT, help="A checkpoint step (default: the final model).")
@click.option("--train", "train_spec", default="hub", show_default=True,
              help="English NLI training data: hub, multinli:PATH or xnli-mt:PATH.")
@click.option("--test", "test_spec", default="hub", show_default=True,
              help="XNLI test data: hub or xnli-tsv:PATH.")
@click.option("--languages", default="",
              help="Languages tested, comma-separated (default: all of the model's).")
@click.option("--train-examples", type=int, default=0, show_default=True,
              help="Fine-tune on the first N pairs only (0 = all).")
@click.option("--epochs", type=float, default=3.0, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--lr", type=float, default=2e-5, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
def command(run_id: str, step: int | None, train_spec: str, test_spec: str, languages: str,
            train_examples: int, epochs: float, batch_size: int, lr: float, seed: int) -> None:
    """Zero-shot cross-lingual transfer on XNLI of a pretrained model."""
    pretrain_run = tracking.get_run(run_id, "pretrain")
    if train_examples < 0:
        raise InputError(f"train_examples must be ≥ 0 (0 = all), got {train_examples}")
    finetune_config = nli.FinetuneConfig(epochs, batch_size, lr, seed=seed)
    finetune_config.validate()
    known = languages_of(pretrain_run.data.tags["data_run_id"])
    codes = [c.strip() for c in languages.split(",") if c.strip()] or known
    unknown = [c for c in codes if c not in known]
    if unknown:
        raise InputError(f"languages {', '.join(unknown)}: the model knows {', '.join(known)}")
    train = nli.load_train(train_spec)
    train = train.head(train_examples) if train_examples else train
    test = nli.load_test(test_spec, codes)
    # Everything checked: now the (large) checkpoint.
    folder = checkpoint_folder(run_id, step)
    tokenizers = Tokenizers.load(folder)
    config = TrainConfig(**json.loads((folder / CONFIG_FILE).read_text()))
    inputs = input_config(config, tokenizers.languages)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    tags = {"step": "xnli", "pretrain_run_id": run_id, "exp": config.exp,
            "paper_id": config.paper_id, "seed": str(config.seed), "track": config.track}
    params = {"run_id": run_id, "checkpoint": "model" if step is None else step,
              "train": train_spec, "test": test_spec, "languages": ",".join(codes),
              "train_examples": len(train), "epochs": epochs, "batch_size": batch_size,
              "lr": lr, "seed": seed}
    name = f"xnli-{config.run_name}"
    logged = params | tracking.provenance() | {"device": device.type}
    with start_run(name, tags, True, logged, experiment_of(config.track)) as run, \
            tempfile.TemporaryDirectory() as tmp:
        model = nli.finetune(folder, tokenizers, inputs, train, finetune_config, device,
                             log=mlflow.log_metrics)
        out = Path(tmp)
        (out / "figures").mkdir()
        report = nli.zero_shot(model, tokenizers, inputs, test, device)
        for code, r in report.items():
            mlflow.log_metric(f"xnli_acc/{code}", r["accuracy"])
            figures.confusion_matrix(np.array(r["confusion"]), nli.LABELS,
                                     out / "figures" / f"confusion_{code}.png",
                                     f"XNLI {code}: accuracy {r['accuracy']:.3f}")
            click.echo(f"xnli {code:8s} accuracy {r['accuracy']:.3f} ({r['pairs']} pairs)")
        (out / "xnli.json").write_text(json.dumps({"labels": nli.LABELS, "languages": report},
                                                  indent=2))
        model.save_pretrained(out / "model")
        tokenizers.save(out / "model")
        (out / "model" / CONFIG_FILE).write_text((folder / CONFIG_FILE).read_text())
        mlflow.log_artifacts(tmp)
    note_launcher(f"XNLI of pretrain run {run_id}: run {run.info.run_id}.", run.info.run_id)
    click.echo(f"xnli: finished run {run.info.run_id}")


if __name__ == "__main__":
    run_command(command)
