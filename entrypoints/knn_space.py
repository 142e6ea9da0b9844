"""`knn-space`: the static cross-lingual space of knn-replace for one prepared dataset.

fastText per language, unsupervised VecMap per pair of languages, and the neighbour table, built
once per prepared dataset and configuration in a run of its own (tag step=knn-space) that every
knn-replace pretraining reuses and references by id.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

import click
import mlflow
import torch

from entrypoints.common import OPTIONAL_INT, note_launcher, run_command, start_run
from entrypoints.prepare import data_run, experiment_of, track_of
from minimult_ml import tracking
from minimult_ml.crosslingual import KnnSpaceConfig, prepared_knn_table
from minimult_ml.errors import InputError
from minimult_ml.prepare import load

TABLE_FILE = "knn_table.pt"
REAL_THREADS = 8


def find(data_run_id: str, config: KnnSpaceConfig) -> str | None:
    """The id of the newest finished knn-space run for this data and config, if any; it lives
    beside the data it was built from."""
    params = dataclasses.asdict(config) | {"data_run_id": data_run_id}
    run = tracking.find_run("knn-space", params, experiment_of(track_of(data_run_id)))
    return run.info.run_id if run else None


def get_or_run(data_run_id: str, config: KnnSpaceConfig, force: bool = False,
               own_launcher: bool = False) -> str:
    """The id of the finished knn-space run for this data and config; builds it when none."""
    try:
        config.validate()
    except ValueError as e:
        raise InputError(str(e)) from None
    found = None if force else find(data_run_id, config)
    if found:
        click.echo(f"knn-space: reusing finished run {found}")
        if own_launcher:
            note_launcher(f"Reused the finished knn-space run {found}.", found)
        return found
    params = dataclasses.asdict(config) | {"data_run_id": data_run_id}
    data = load(tracking.download(data_run_id, ""))
    click.echo("knn-space: training fastText per language and mapping with VecMap …")
    table, report = prepared_knn_table(data, config)
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(table, Path(tmp) / TABLE_FILE)
        (Path(tmp) / "report.json").write_text(json.dumps(report, indent=2))
        tags = {"step": "knn-space", "data_run_id": data_run_id}
        with start_run(f"knn-space-k{config.k}", tags, own_launcher,
                       params | tracking.provenance(),
                       experiment_of(track_of(data_run_id))) as run:
            mlflow.log_metrics({k: v for k, v in report.items() if isinstance(v, float)}
                               | {f"vecmap_iterations/{pair}": r["iterations"]
                                  for pair, r in report["pairs"].items()})
            mlflow.log_artifacts(tmp)
    click.echo(f"knn-space: finished run {run.info.run_id} in {report['seconds']:.0f} s"
               + "".join(f"; {k} {report[k]:.3f}" for k in report if k.startswith("knn_")))
    return run.info.run_id


def default_config(track: str, k: int | None = None, **given: object) -> KnnSpaceConfig:
    """The lab's space: one fastText thread, bit-for-bit reproducible. The real track's: fastText
    on a gigabyte per language takes hours on one thread, so REAL_THREADS (Hogwild, not
    bit-reproducible, which noisy real data can afford); k = 5 neighbours (paper §5.1)."""
    config = KnnSpaceConfig(k=k or (1 if track == "lab" else 5),
                            threads=1 if track == "lab" else REAL_THREADS)
    return dataclasses.replace(config, **{k: v for k, v in given.items() if v is not None})


def knn_run(knn_run_id: str, data_run_id: str, k: int) -> str:
    """The knn-space run for a pretraining: the one given (checked against its data and k), or
    the default space of the data (built once)."""
    if not knn_run_id:
        return get_or_run(data_run_id, default_config(track_of(data_run_id), k))
    params = tracking.get_run(knn_run_id, "knn-space").data.params
    if params["data_run_id"] != data_run_id or int(params["k"]) != k:
        raise InputError(f"knn-space run {knn_run_id} was built for data {params['data_run_id']} "
                         f"with k={params['k']}, not data {data_run_id} with k={k}; "
                         "pass a matching run or none")
    return knn_run_id


def load_table(run_id: str) -> torch.Tensor:
    return torch.load(tracking.download(run_id, TABLE_FILE))


@click.command("knn-space")
@click.option("--data-run-id", default="", help="The prepare run (default: the newest default "
                                                 "one of --track).")
@click.option("--track", type=click.Choice(["lab", "real"]), default="lab", show_default=True,
              help="Without --data-run-id: whose default data (and defaults) to use.")
@click.option("--k", type=OPTIONAL_INT, help="Neighbours per token (1 lab, 5 real).")
@click.option("--dim", type=int, default=300, show_default=True, help="fastText dimension.")
@click.option("--epoch", type=int, default=20, show_default=True, help="fastText epochs.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=OPTIONAL_INT,
              help=f"fastText threads per language (1 lab: bit-for-bit reproducible; "
                   f"{REAL_THREADS} real).")
@click.option("--force", type=bool, default=False, show_default=True,
              help="Build anew even if a finished run exists.")
def command(data_run_id: str, track: str, k: int | None, dim: int, epoch: int, seed: int,
            threads: int | None, force: bool) -> None:
    """Build (or reuse) the knn-replace neighbour table of a prepared dataset."""
    data_run_id = data_run(data_run_id or None, track)
    config = default_config(track_of(data_run_id), k, dim=dim, epoch=epoch, seed=seed,
                            threads=threads)
    get_or_run(data_run_id, config, force, own_launcher=True)


if __name__ == "__main__":
    run_command(command)
