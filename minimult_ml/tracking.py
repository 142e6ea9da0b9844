"""MLflow conventions (DESIGN §7): finding and reusing runs, provenance, artifact I/O."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import mlflow
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from minimult_ml import store
from minimult_ml.errors import InputError

LAB_EXPERIMENT = "minimult-lab"
REAL_EXPERIMENT = "minimult-real"
PACKAGES = ("torch", "transformers", "tokenizers", "mlflow", "fasttext-numpy2", "nltk")


def experiment_name(default: str = LAB_EXPERIMENT) -> str:
    """MLFLOW_EXPERIMENT_NAME, else the experiment of MLFLOW_EXPERIMENT_ID (what `mlflow run
    --experiment-name/-id` passes on) unless that is MLflow's "Default", else `default`."""
    if name := os.environ.get("MLFLOW_EXPERIMENT_NAME"):
        return name
    experiment_id = os.environ.get("MLFLOW_EXPERIMENT_ID", "0")
    if experiment_id != "0":
        with server_errors():
            return MlflowClient().get_experiment(experiment_id).name
    return default


@contextmanager
def server_errors() -> Iterator[None]:
    """Turn a failing or unreachable tracking server into one clear InputError; the store is
    checked on first use (store.connect)."""
    store.connect()
    try:
        yield
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise
        raise InputError(f"tracking server {mlflow.get_tracking_uri()} failed: "
                         f"{str(e).splitlines()[0]}; check MLFLOW_TRACKING_URI") from None
    except OSError as e:  # requests' connection errors are OSErrors
        raise InputError(f"tracking server {mlflow.get_tracking_uri()} is unreachable "
                         f"({type(e).__name__}); start it or fix MLFLOW_TRACKING_URI") from None


def find_runs(step: str, params: dict[str, object], experiment: str,
              finished: bool = True) -> list[Run]:
    """Runs of `step` in `experiment` whose params equal `params`, newest first: the finished
    ones, or (finished=False) those killed, failed or still marked running."""
    with server_errors():
        exp = mlflow.get_experiment_by_name(experiment)
    if exp is None:
        return []
    clauses = [f"tags.step = '{step}'",
               f"attributes.status {'=' if finished else '!='} 'FINISHED'"]
    clauses += [f"params.{k} = '{v}'" for k, v in params.items()]
    with server_errors():
        return MlflowClient().search_runs([exp.experiment_id], " and ".join(clauses),
                                          order_by=["attributes.start_time DESC"])


def find_run(step: str, params: dict[str, object], experiment: str) -> Run | None:
    """The newest finished run of `step` in `experiment` whose params equal `params`."""
    runs = find_runs(step, params, experiment)
    return runs[0] if runs else None


def get_run(run_id: str, step: str) -> Run:
    """The run `run_id`, which must exist and be a run of `step`."""
    try:
        with server_errors():
            run = MlflowClient().get_run(run_id)
    except MlflowException:
        raise InputError(f"run id {run_id!r} does not exist on {mlflow.get_tracking_uri()}; "
                         "pass the id of an existing run") from None
    actual = run.data.tags.get("step")
    if actual != step:
        raise InputError(f"run {run_id} is a {actual or 'untagged'} run, not a {step} run; "
                         f"pass the id of a {step} run")
    return run


def checkpoint_steps(run_id: str) -> list[int]:
    """The steps of a pretrain run's checkpoints (`checkpoints/step-N`), ascending; the last is
    the final model once the run has finished."""
    with server_errors():
        folders = MlflowClient().list_artifacts(run_id, "checkpoints")
    return sorted(int(f.path.rsplit("step-", 1)[1]) for f in folders if f.is_dir)


def provenance() -> dict[str, str]:
    """Git commit and package versions, logged as params with every run.

    The Docker image has no repository to ask: its build records the commit in
    MINIMULT_GIT_COMMIT (the Dockerfile's GIT_COMMIT build argument).
    """
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = os.environ.get("MINIMULT_GIT_COMMIT") or "unknown"
    return {"git_commit": commit} | {f"version_{p}": metadata.version(p) for p in PACKAGES}


def download(run_id: str, path: str) -> Path:
    """A local copy of an artifact (file or folder) of a run."""
    return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path))
