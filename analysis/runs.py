"""Reading the tracking server for the tables: runs by their step tag (DESIGN §7)."""

from __future__ import annotations

from mlflow.entities import Run

from minimult_ml import tracking
from minimult_ml.results import PretrainRun


def search(experiments: list[str], step: str, finished: bool = True) -> list[Run]:
    """Every run tagged `step` in those of `experiments` that exist, newest first: the finished
    ones, or (finished=False) all of them."""
    return tracking.search(experiments, tracking.step_query(step, finished=True if finished
                                                             else None))


def pretrain_runs(experiments: list[str]) -> list[PretrainRun]:
    """Every pretrain run of the lab, finished or not (an unfinished one is reported as such).
    Real-track runs (exp `original` too) belong to Table 3, through their transfer runs."""
    found = map(PretrainRun, search(experiments, "pretrain", finished=False))
    return [run for run in found if run.track == "lab"]
