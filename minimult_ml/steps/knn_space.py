"""The knn-space step: a prepare run and a KnnSpaceConfig → its run (the static cross-lingual
space of knn-replace: fastText per language, unsupervised VecMap per pair, the neighbour table),
built once per data and configuration and referenced by id from every knn-replace pretraining."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

import click
import mlflow
import torch

from minimult_ml import tracking
from minimult_ml.crosslingual import KnnSpaceConfig, prepared_knn_table
from minimult_ml.errors import InputError
from minimult_ml.experiments import TrainConfig
from minimult_ml.steps import runs
from minimult_ml.steps.prepare import data_track, load_data

STEP = "knn-space"
TABLE_FILE = "knn_table.pt"
REAL_THREADS = 8


def needs_space(config: TrainConfig) -> bool:
    """Whether pretraining `config` replaces masked tokens by neighbours (knn-replace)."""
    return config.masking.p_knn > 0


def default_config(track: str, k: int | None = None, **given: object) -> KnnSpaceConfig:
    """The lab's space: one fastText thread, bit-for-bit reproducible. The real track's: fastText
    on a gigabyte per language takes hours on one thread, so REAL_THREADS (Hogwild, not
    bit-reproducible, which noisy real data can afford); k = 5 neighbours (paper §5.1)."""
    config = KnnSpaceConfig(k=k or (1 if track == "lab" else 5),
                            threads=1 if track == "lab" else REAL_THREADS)
    return dataclasses.replace(config, **{k: v for k, v in given.items() if v is not None})


def run_params(data_run_id: str, config: KnnSpaceConfig) -> dict[str, object]:
    return dataclasses.asdict(config) | {"data_run_id": data_run_id}


def find(data_run_id: str, config: KnnSpaceConfig, reuse: str = "same-code") -> str | None:
    """The id of the finished knn-space run to reuse for this data and config, if any; it lives
    beside the data it was built from."""
    run = runs.find_finished(STEP, run_params(data_run_id, config),
                             runs.experiment_of(data_track(data_run_id)), reuse)
    return run.info.run_id if run else None


def get_or_run(data_run_id: str, config: KnnSpaceConfig, reuse: str = "same-code") -> str:
    """The id of the finished knn-space run for this data and config; builds it when none."""
    config.validate()
    runs.check_reuse(reuse)
    experiment = runs.experiment_of(data_track(data_run_id))
    params = run_params(data_run_id, config)
    if found := runs.find_finished(STEP, params, experiment, reuse):
        return runs.reused(STEP, found)
    data = load_data(data_run_id)
    click.echo("knn-space: training fastText per language and mapping with VecMap …")
    table, report = prepared_knn_table(data, config, log=click.echo)
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(table, Path(tmp) / TABLE_FILE)
        (Path(tmp) / "report.json").write_text(json.dumps(report, indent=2))
        description = (f"knn-replace space of prepare run {data_run_id}: fastText (dim "
                       f"{config.dim}, {config.epoch} epochs) per language, unsupervised VecMap, "
                       f"{config.k} nearest neighbour(s) per token.")
        with runs.start(STEP, f"knn-space-k{config.k}", {"data_run_id": data_run_id}, params,
                        experiment, description) as run, tracking.server_errors():
            mlflow.log_metrics({k: v for k, v in report.items() if isinstance(v, float)}
                               | {f"vecmap_iterations/{pair}": r["iterations"]
                                  for pair, r in report["pairs"].items()})
            mlflow.log_artifacts(tmp)
    click.echo(f"knn-space: finished run {run.info.run_id} in {report['seconds']:.0f} s")
    for line in quality_lines(report):
        click.echo(line)
    for pair, rows in report.get("samples", {}).items():  # a look at the induced dictionary
        click.echo(f"{pair}: " + "; ".join(f"{t} → {' '.join(n)}" for t, n in rows))
    return run.info.run_id


FAILED_MAPPING = 0.1  # weak-gold precision@1 below which a pair's mapping has likely failed


def quality_lines(report: dict) -> list[str]:
    """What the induced dictionary gets right: the lab's gold (the shift), or per pair of real
    languages the identically spelled tokens, with a warning where almost none map to
    themselves (unsupervised VecMap fails on spaces that are too small or too different)."""
    if "knn_precision_p1" in report:
        return [f"knn-space: precision@1 of the induced dictionary {report['knn_precision_p1']:.3f}"
                f" (1,000 most frequent tokens: {report['knn_precision_p1_top1000']:.3f})"]
    lines = []
    for key in sorted(k for k in report if k.startswith("knn_weak_p1/")):
        pair = key.removeprefix("knn_weak_p1/")
        p1, n = report[key], int(report[f"knn_weak_pairs/{pair}"])
        lines.append(f"knn-space: {pair} precision@1 {p1:.3f} on the {n:,} tokens spelled "
                     "identically in both languages")
        if n and p1 < FAILED_MAPPING:
            lines.append(f"knn-space: warning: the {pair} mapping has likely failed (fewer than "
                         f"{FAILED_MAPPING:.0%} of identical spellings map to themselves); "
                         "knn-replace on this space swaps masked tokens for unrelated ones. "
                         "Unsupervised VecMap needs more text per language")
    return lines


def knn_run(knn_run_id: str, data_run_id: str, k: int, reuse: str = "same-code") -> str:
    """The knn-space run for a pretraining: the one given (checked against its data and k), or
    the default space of the data (built once)."""
    if not knn_run_id:
        return get_or_run(data_run_id, default_config(data_track(data_run_id), k), reuse)
    params = tracking.get_run(knn_run_id, STEP).data.params
    if params["data_run_id"] != data_run_id or int(params["k"]) != k:
        raise InputError(f"knn-space run {knn_run_id} was built for data {params['data_run_id']} "
                         f"with k={params['k']}, not data {data_run_id} with k={k}; "
                         "pass a matching run or none")
    return knn_run_id


def load_table(run_id: str) -> torch.Tensor:
    return torch.load(tracking.download(run_id, TABLE_FILE))
