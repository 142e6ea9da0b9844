"""The production tracking stack, run outside its containers: PostgreSQL from Debian's packages
behind the `mlflow server` service of deploy/compose.yaml (its command, environment and
basic_auth.ini, with local addresses and a local artifact folder in place of MinIO), and a
sweep pod's own command, a tiny pretrain that evaluates its checkpoints, logging to it."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import psycopg2
import pytest
from mlflow.tracking import MlflowClient

from minimult_ml import tracking
from minimult_ml.steps import prepare as prepare_step
from minimult_ml.sweep import Sweep, manifests
from minimult_ml.tracking import LAB_EXPERIMENT

from . import compose
from .conftest import ROOT, SMALL, _free_port, serve_mlflow


@pytest.fixture(scope="module")
def dotenv() -> dict[str, str]:
    """The deploy/.env a user would write."""
    env = {name: "" for name in compose.example_variables()}
    return env | {"POSTGRES_USER": "mlflow", "POSTGRES_PASSWORD": secrets.token_urlsafe(16),
                  "MINIO_ROOT_USER": "unused", "MINIO_ROOT_PASSWORD": "unused-here",
                  "MLFLOW_ADMIN_USERNAME": "admin",
                  "MLFLOW_ADMIN_PASSWORD": secrets.token_urlsafe(16),
                  "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(32)}


def _postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parts[-3]))
    if not found:
        pytest.fail("PostgreSQL is not installed; `make test` installs it (apt-get install "
                    "postgresql)")
    return found[-1].parent


@pytest.fixture(scope="module")
def postgres(dotenv: dict[str, str]) -> Iterator[dict[str, str]]:
    """A PostgreSQL server on 127.0.0.1 with the databases the compose stack creates; yields
    libpq's connection variables."""
    pg = _postgres_bin()
    # Not under pytest's private tmp: the postgres user must reach the folder.
    root = Path(tempfile.mkdtemp(prefix="minimult-postgres-"))
    (root / "password").write_text(dotenv["POSTGRES_PASSWORD"])
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        as_postgres = ["runuser", "-u", "postgres", "--"]
        for path in (root, root / "password"):
            shutil.chown(path, "postgres")
    port = _free_port()
    subprocess.run([*as_postgres, pg / "initdb", "-D", root / "data", "-U", dotenv["POSTGRES_USER"],
                    "--pwfile", root / "password", "--auth=scram-sha-256", "-E", "UTF8",
                    "--locale=C", "--no-sync"], check=True, capture_output=True)
    subprocess.run([*as_postgres, pg / "pg_ctl", "-D", root / "data", "-l", root / "log", "-w",
                    "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off",
                    "start"], check=True, capture_output=True)
    libpq = {"PGHOST": "127.0.0.1", "PGPORT": str(port), "PGUSER": dotenv["POSTGRES_USER"],
             "PGPASSWORD": dotenv["POSTGRES_PASSWORD"]}
    try:
        postgres_env = compose.load(dotenv)["services"]["postgres"]["environment"]
        with _connect(libpq, "postgres") as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {postgres_env['POSTGRES_DB']}")
            cur.execute((ROOT / "deploy" / "postgres-init.sql").read_text())
        yield libpq
    finally:
        subprocess.run([*as_postgres, pg / "pg_ctl", "-D", root / "data", "-m", "fast", "stop"],
                       capture_output=True)
        shutil.rmtree(root)


@contextmanager
def _connect(libpq: dict[str, str], database: str) -> Iterator[psycopg2.extensions.connection]:
    """A connection in autocommit mode (CREATE DATABASE allows no transaction), then closed."""
    conn = psycopg2.connect(host=libpq["PGHOST"], port=libpq["PGPORT"], user=libpq["PGUSER"],
                            password=libpq["PGPASSWORD"], dbname=database)
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture(scope="module")
def auth_server(dotenv: dict[str, str], postgres: dict[str, str],
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """compose.yaml's mlflow service as a local process."""
    service = compose.load(dotenv)["services"]["mlflow"]
    root = tmp_path_factory.mktemp("auth-server")
    # The service's own arguments, but a local artifact folder; serve_mlflow picks the address.
    args = [f"{flag}={str(root / 'artifacts') if flag == '--artifacts-destination' else value}"
            for flag, _, value in (arg.partition("=") for arg in service["command"][2:])
            if flag not in ("--host", "--port")]
    assert service["command"][:2] == ["mlflow", "server"]
    env = (os.environ | service["environment"] | postgres
           # the server image sets this to its copy of basic_auth.ini
           | {"MLFLOW_AUTH_CONFIG_PATH": str(ROOT / "deploy" / "basic_auth.ini")})
    with serve_mlflow(args, root, env) as uri:
        yield uri


def test_sweep_pod_trains_and_evaluates_against_the_production_server(
        auth_server: str, postgres: dict[str, str], dotenv: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Basic auth is on: no answer without credentials.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{auth_server}/api/2.0/mlflow/experiments/search?max_results=1")
    assert refused.value.code == 401
    # What the sweep's Secret holds.
    secret = {"MLFLOW_TRACKING_URI": auth_server,
              "MLFLOW_TRACKING_USERNAME": dotenv["MLFLOW_ADMIN_USERNAME"],
              "MLFLOW_TRACKING_PASSWORD": dotenv["MLFLOW_ADMIN_PASSWORD"]}
    for name, value in secret.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)  # the lab's experiment
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    mlflow.set_tracking_uri(auth_server)
    data_run_id = prepare_step.get_or_run(SMALL)

    sweep = Sweep.build(["original"], [0, 7], "registry.example.org/minimult-ml:test",
                        {"data_run_id": data_run_id, "max_steps": "2", "batch_size": "8"},
                        eval_every=2)
    (job,) = manifests(sweep)  # the data are given and original needs no knn space
    container = job["spec"]["template"]["spec"]["containers"][0]
    # The pod's environment: what the manifest and the Secret give it, nothing of this session's.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")} | secret | {
        "JOB_COMPLETION_INDEX": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    pod = subprocess.run(container["command"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert pod.returncode == 0, pod.stderr[-3000:]
    assert "task 1: exp=original seed=7" in pod.stdout

    client = MlflowClient()
    experiment = client.get_experiment_by_name(LAB_EXPERIMENT)
    (run,) = client.search_runs([experiment.experiment_id], "tags.step = 'pretrain'")
    assert run.info.status == "FINISHED" and run.info.run_name == "0-original-s7"
    assert (run.data.tags["exp"], run.data.tags["seed"]) == ("original", "7")
    assert run.data.params["data_run_id"] == data_run_id
    assert len(run.data.params["git_commit"]) == 40  # provenance from this checkout
    history = client.get_metric_history(run.info.run_id, tracking.MULT_SCORE)
    assert [m.step for m in history] == [2]
    assert {tracking.align_f1(0), tracking.retrieval_p1(8), tracking.translation_p1(0),
            tracking.PPL_DEV, tracking.LOSS} <= set(run.data.metrics)
    assert [f.path for f in client.list_artifacts(run.info.run_id, "evaluation")] == [
        "evaluation/step-2.json"]
    # The server keeps runs and users in PostgreSQL.
    with _connect(postgres, "mlflow") as conn, conn.cursor() as cur:
        cur.execute("SELECT status FROM runs WHERE run_uuid = %s", (run.info.run_id,))
        assert cur.fetchone() == ("FINISHED",)
    with _connect(postgres, "mlflow_auth") as conn, conn.cursor() as cur:
        cur.execute("SELECT username, is_admin FROM users")
        assert cur.fetchall() == [(dotenv["MLFLOW_ADMIN_USERNAME"], True)]
