"""Shared fixtures: a real `mlflow server` on 127.0.0.1, and a small prepared lab corpus."""

from __future__ import annotations

import csv
import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from minimult_ml.prepare import PrepareConfig, prepare

ROOT = Path(__file__).resolve().parents[1]
# The models here are tiny: a second thread gains little, and on a busy 2-core machine threads
# that wait for each other make a run many times slower. The entry points that tests start as
# processes get one thread too: a sum split over two threads rounds differently, and a test that
# compares a killed-and-resumed run with one in this process must not see that.
torch.set_num_threads(1)
os.environ["OMP_NUM_THREADS"] = "1"
# A slice of the embedded Bible, big enough for every step and small enough for CI.
SMALL = PrepareConfig(train_sentences=400, dev_sentences=120, vocab_size=400)


def refused(command: object, args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run an entry point in this process on bad input: it must exit 2 with one line on stderr
    (no traceback); that line."""
    from entrypoints.common import run_command

    with pytest.raises(SystemExit) as exit_info:
        run_command(command, args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_mlflow(args: list[str], root: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """A real `mlflow server` process on 127.0.0.1 with `args` (its stores), until the block
    ends; yields its URI. Its log is root/server.log."""
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    # Without MLflow's job runner (GenAI jobs: none here), which starts three huey consumer
    # processes per server: on two cores they slow every test that talks to the server.
    env = {**(env if env is not None else os.environ),
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(root / "server.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port",
             str(port), "--workers", "1", *args], env=env, stdout=subprocess.DEVNULL,
            stderr=log, start_new_session=True)
    try:
        deadline = time.time() + 300  # a busy shared machine starts a server slowly
        while True:
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError((root / "server.log").read_text()[-3000:]) from None
                time.sleep(0.5)
        yield uri
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its workers
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real tracking server process (SQLite backend, local artifacts), for the whole session."""
    root = tmp_path_factory.mktemp("mlflow")
    with serve_mlflow(["--backend-store-uri", f"sqlite:///{root}/mlflow.db",
                       "--artifacts-destination", str(root / "artifacts")], root) as uri:
        yield uri


@contextmanager
def on_server(uri: str, experiment: str) -> Iterator[None]:
    """Steps called in the block log to `uri`, in `experiment` (for session-wide fixtures)."""
    import mlflow

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("MLFLOW_EXPERIMENT_NAME", experiment)
        mp.delenv("MLFLOW_RUN_ID", raising=False)
        mp.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
        mlflow.set_tracking_uri(uri)
        yield


@pytest.fixture
def tracking(mlflow_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point this test at the server, in an experiment of its own."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", f"test-{uuid.uuid4().hex[:8]}")
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)  # mlflow.set_experiment sets it
    import mlflow

    mlflow.set_tracking_uri(mlflow_server)
    return os.environ["MLFLOW_EXPERIMENT_NAME"]


def csv_rows(text: str) -> dict[str, dict[str, str]]:
    """A table's CSV (an analysis artifact), its rows by their id column."""
    return {row["id"]: row for row in csv.DictReader(io.StringIO(text))}


def runs(experiment: str, query: str) -> list:
    """The runs of `experiment` (by name) that match the search `query`, newest first."""
    import mlflow
    from mlflow.tracking import MlflowClient

    exp = mlflow.get_experiment_by_name(experiment)
    return MlflowClient().search_runs([exp.experiment_id], query)


@pytest.fixture
def steps_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep's steps run `python -m …` from PATH, as under `mlflow run --env-manager local`:
    this interpreter's, first."""
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


@pytest.fixture(scope="session")
def small_prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`prepare` of the small slice into a folder (no tracking)."""
    out = tmp_path_factory.mktemp("prepared")
    prepare(SMALL, out)
    return out


@pytest.fixture(scope="session")
def prepare_run(mlflow_server: str) -> str:
    """A finished prepare run of the small slice on the test server (its own experiment)."""
    from minimult_ml.steps import prepare as prepare_step

    with on_server(mlflow_server, "fixtures"):
        return prepare_step.get_or_run(SMALL)
