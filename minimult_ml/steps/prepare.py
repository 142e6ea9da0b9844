"""The prepare step: a PrepareConfig → its run (corpora, tokenizer, token ids, stats)."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

import click
import mlflow

from minimult_ml import tracking
from minimult_ml.prepare import LAB_LANGUAGES, PrepareConfig, Prepared, load, prepare
from minimult_ml.steps import runs

STEP = "prepare"


def run_name(config: PrepareConfig) -> str:
    source = Path(config.source.partition(":")[2]).stem or config.source
    languages = "" if config.is_lab else "-" + "-".join(config.codes)
    return f"prepare-{source}{languages}-v{config.vocab_size}"


def languages_of(data_run_id: str) -> list[str]:
    """The language codes of a prepare run's data, in the order of its id blocks."""
    with tracking.server_errors():
        params = mlflow.MlflowClient().get_run(data_run_id).data.params
    return params.get("languages", LAB_LANGUAGES).split(",")


def data_track(data_run_id: str) -> str:
    """The track of a prepare run's data: the lab (English + Fake-English) or real."""
    return "lab" if languages_of(data_run_id) == LAB_LANGUAGES.split(",") else "real"


def track_config(track: str) -> PrepareConfig:
    """The default data of a track."""
    return PrepareConfig() if track == "lab" else PrepareConfig.real()


def get_or_run(config: PrepareConfig, reuse: str = "same-code") -> str:
    """The id of the newest finished prepare run with this config made by the same code (see
    `runs.choose`); runs prepare when there is none."""
    config.validate()
    runs.check_reuse(reuse)
    experiment = runs.experiment_of("lab" if config.is_lab else "real")
    params = dataclasses.asdict(config)
    if found := runs.find_finished(STEP, params, experiment, reuse):
        return runs.reused(STEP, found)
    # Build everything before the run exists, so bad input leaves no half-written run behind.
    with tempfile.TemporaryDirectory() as tmp:
        summary = prepare(config, Path(tmp))
        stats = summary["stats"]
        tags = {"languages": ",".join(stats["languages"])}
        logged = params | summary["fingerprints"] | {
            "sentence_splitter": json.dumps(stats["sentence_splitter"])}
        description = (f"Prepared {config.source} in {', '.join(stats['languages'])}: "
                       f"sentences, WordPiece vocabulary ({stats['vocab_size']} ids), token ids.")
        with runs.start(STEP, run_name(config), tags, logged, experiment, description) as run:
            mlflow.log_metrics(_flatten({split: stats[split] for split in ("train", "dev")})
                               | {"vocab_size": stats["vocab_size"]})
            mlflow.log_artifacts(tmp)
    click.echo(f"prepare: finished run {run.info.run_id}")
    return run.info.run_id


def _flatten(tree: dict, prefix: str = "") -> dict[str, float]:
    """{"train": {"de": {"sentences": 3}}} → {"train/de/sentences": 3}."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}/")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def data_run(data_run_id: str | None, track: str = "lab", reuse: str = "same-code") -> str:
    """The prepare run a later step uses: the one given (checked), or the newest finished
    default one of the track — run first when there is none (DESIGN §3)."""
    if data_run_id:
        tracking.get_run(data_run_id, STEP)
        return data_run_id
    return get_or_run(track_config(track), reuse)


def load_data(data_run_id: str) -> Prepared:
    """A prepare run's data, downloaded."""
    return load(tracking.download(data_run_id, ""))


def data_fingerprints(data_run_id: str) -> dict[str, str]:
    """The sha256 of a prepare run's token ids, as params of the runs trained on them."""
    with tracking.server_errors():
        params = mlflow.MlflowClient().get_run(data_run_id).data.params
    return {f"data_{k}": v for k, v in params.items() if k.endswith("_sha256")}


def stats(run_id: str) -> dict:
    with tracking.server_errors():
        return mlflow.artifacts.load_dict(f"runs:/{run_id}/stats.json")
