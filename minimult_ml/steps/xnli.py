"""The xnli step: a pretrain run's model → its run (fine-tuned on English NLI, tested zero-shot in
every language; paper §5.1, Table 3), linked to the pretrain run."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click
import mlflow
import numpy as np
import torch
from mlflow.exceptions import MlflowException

from minimult_ml import figures, nli, tracking
from minimult_ml.errors import InputError
from minimult_ml.experiments import CONFIG_FILE, load_config
from minimult_ml.inputs import input_config
from minimult_ml.steps import runs
from minimult_ml.steps.prepare import languages_of
from minimult_ml.vocab import Tokenizers

STEP = "xnli"


def checkpoint_folder(run_id: str, step: int | None) -> Path:
    """The run's final model, or its checkpoint at `step`."""
    path = "model" if step is None else f"checkpoints/step-{step}"
    if not tracking.artifact_exists(run_id, path):
        raise InputError(f"run {run_id} has no {path}: pass a finished pretrain run, or the "
                         "step of one of its checkpoints")
    try:
        return tracking.download(run_id, path)
    except MlflowException:  # listed, yet not downloadable: say which
        raise InputError(f"run {run_id}: its {path} could not be downloaded; check the "
                         "artifact store") from None


def xnli(run_id: str, step: int | None, train_spec: str, test_spec: str,
         languages: list[str], train_examples: int,
         finetune_config: nli.FinetuneConfig) -> str:
    """Fine-tune the pretrain run's model (its final one, or checkpoint `step`) on English NLI,
    test it zero-shot in `languages` (default: all of the model's); the new run's id."""
    pretrain_run = tracking.get_run(run_id, "pretrain")
    if train_examples < 0:
        raise InputError(f"train_examples must be ≥ 0 (0 = all), got {train_examples}")
    finetune_config.validate()
    known = languages_of(pretrain_run.data.tags["data_run_id"])
    codes = languages or known
    unknown = [c for c in codes if c not in known]
    if unknown:
        raise InputError(f"languages {', '.join(unknown)}: the model knows {', '.join(known)}")
    train = nli.load_train(train_spec)
    train = train.head(train_examples) if train_examples else train
    test = nli.load_test(test_spec, codes)
    # Everything checked: now the (large) checkpoint.
    folder = checkpoint_folder(run_id, step)
    tokenizers = Tokenizers.load(folder)
    config = load_config(folder)
    inputs = input_config(config, tokenizers.languages)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    tags = {"pretrain_run_id": run_id, "exp": config.exp, "paper_id": config.paper_id,
            "seed": str(config.seed), "track": config.track}
    c = finetune_config
    params = {"run_id": run_id, "checkpoint": "model" if step is None else step,
              "train": train_spec, "test": test_spec, "languages": ",".join(codes),
              "train_examples": len(train), "epochs": c.epochs, "batch_size": c.batch_size,
              "lr": c.lr, "seed": c.seed, "device": device.type}
    description = (f"XNLI zero-shot transfer of pretrain run {run_id} ({config.run_name}): "
                   f"fine-tuned on {len(train)} English pairs, tested in {', '.join(codes)}.")
    with runs.start(STEP, f"xnli-{config.run_name}", tags, params,
                    runs.experiment_of(config.track), description) as run, \
            tempfile.TemporaryDirectory() as tmp:
        model = nli.finetune(folder, tokenizers, inputs, train, finetune_config, device,
                             log=mlflow.log_metrics)
        out = Path(tmp)
        (out / "figures").mkdir()
        report = nli.zero_shot(model, tokenizers, inputs, test, device)
        for code, r in report.items():
            mlflow.log_metric(f"{tracking.XNLI_ACC}{code}", r["accuracy"])
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
    click.echo(f"xnli: finished run {run.info.run_id}")
    return run.info.run_id
