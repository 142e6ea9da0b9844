"""The tracking store as every step meets it (DESIGN §7, §9).

Four things MLflow leaves to its callers:
- a server that does not answer: MLflow retries each request for minutes in silence, so the store
  is probed once, quickly, and retries are bounded;
- where artifacts go: MLflow's client puts a new experiment's artifacts under the *working
  directory* (`./mlruns`) even when the store is a SQLite file elsewhere, which breaks every
  later run once that folder is read-only or gone; ours go beside the store;
- several processes starting together (two sweeps, two terminals): creating a new SQLite store or
  an experiment races, and two processes would build the same step's run twice;
- runs whose process died (`kill -9`, an evicted pod) stay RUNNING forever: each run records its
  host and process id, and a later step that finds one whose process is gone marks it KILLED.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import socket
import ssl
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlparse

import mlflow
from mlflow.entities import Experiment, LifecycleStage, Run, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PROJECT_ENTRY_POINT, MLFLOW_RUN_NOTE

from minimult_ml.errors import InputError

# MLflow's defaults (7 retries, backoff factor 2) keep a dead server silent for 4.5 minutes per
# request; 3 retries with factor 2 wait 2 + 4 + 8 s, enough to ride out a server restart.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "2"}
PROBE_SECONDS = 5
HOST_TAG, PID_TAG = "host", "pid"  # the process that works on a run, to tell orphans


_checked: set[str] = set()  # the stores this process has checked


def connect() -> str:
    """Check the tracking store once, before any work, and return its URI: a server must answer
    within seconds, a new SQLite store is created by one process at a time."""
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    uri = mlflow.get_tracking_uri()
    if uri in _checked:
        return uri
    if is_server(uri):
        if reason := unreachable(uri):
            raise InputError(f"tracking server {uri} is unreachable ({reason}); start it or fix "
                             "MLFLOW_TRACKING_URI")
    elif database := sqlite_path(uri):
        check_sqlite(uri, database)
        # MLflow creates a store's tables on first use without a lock: two processes creating
        # the same new SQLite file collide ("table experiments already exists").
        with exclusive(f"create {uri}"):
            MlflowClient().search_experiments(max_results=1)
    _checked.add(uri)
    return uri


def check_sqlite(uri: str, database: Path) -> None:
    """A SQLite store must be writable here, as must its folder (SQLite writes its journal
    beside the file). Checked first: MLflow retries a store it cannot open for two minutes."""
    folder = next(p for p in (database.parent, *database.parents) if p.exists())
    blocked = [p for p in (folder, database) if p.exists() and not os.access(p, os.W_OK)]
    if blocked:
        raise InputError(f"tracking store {uri} is not writable by this user ({blocked[0]} is "
                         "read-only); set MLFLOW_TRACKING_URI to a store you can write")


def is_server(uri: str) -> bool:
    return urlparse(uri).scheme in ("http", "https")


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI (None for other stores and in-memory ones)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = unquote(uri[len("sqlite:///"):].split("?", 1)[0])
    return Path(path).resolve() if path and path != ":memory:" else None


def unreachable(uri: str) -> str | None:
    """Why the server at `uri` cannot be reached, or None when it answers (any HTTP answer will
    do: this tells a dead server from a live one, MLflow reports the rest)."""
    context = None
    if uri.startswith("https:"):  # the TLS settings MLflow's client honours
        if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
            context = ssl._create_unverified_context()
        else:
            context = ssl.create_default_context(
                cafile=os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None)
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=PROBE_SECONDS,
                               context=context).close()
    except urllib.error.HTTPError:
        return None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, TimeoutError):
            return f"no answer within {PROBE_SECONDS} s"
        if isinstance(reason, ConnectionRefusedError):
            return "connection refused"
        if isinstance(reason, socket.gaierror):
            return f"unknown host {urlparse(uri).hostname}"
        return _first_line(reason) if isinstance(reason, BaseException) else str(reason)
    return None


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


# --------------------------------------------------------------------------------------------
# Experiments and their artifacts

def artifact_location(name: str, uri: str | None = None) -> str | None:
    """Where a new experiment `name` keeps its artifacts: `mlruns/<name>` beside a SQLite store;
    None (the store decides) for a server, which serves its own artifact root, and for other
    stores."""
    database = sqlite_path(uri or mlflow.get_tracking_uri())
    if database is None:
        return None
    return str(database.parent / "mlruns" / re.sub(r"[^A-Za-z0-9._-]+", "_", name))


def experiment(name: str) -> Experiment:
    """The active experiment `name`, created when missing — with its artifacts beside the store,
    and safely when another process creates it at the same moment —, whose artifact location
    this user can write."""
    connect()
    client = MlflowClient()
    found = client.get_experiment_by_name(name)
    if found is None:
        try:
            client.create_experiment(name, artifact_location=artifact_location(name))
        except MlflowException as e:
            if e.error_code != "RESOURCE_ALREADY_EXISTS":  # else: another process was first
                raise
        found = client.get_experiment_by_name(name)
    check_usable(found)
    return mlflow.set_experiment(experiment_id=found.experiment_id)


def check_experiment(name: str) -> None:
    """Before any work: the experiment `name`, when it exists, can take runs (see
    `check_usable`); a missing one will be created where it can."""
    connect()
    if (found := MlflowClient().get_experiment_by_name(name)) is not None:
        check_usable(found)


def check_usable(exp: Experiment) -> None:
    """An experiment must not be deleted, and a local artifact location must be writable here
    (or creatable): else every run of it would fail at its first artifact, after its work."""
    if exp.lifecycle_stage == LifecycleStage.DELETED:
        raise InputError(f"experiment {exp.name!r} is deleted; restore it (mlflow experiments "
                         "restore) or set MLFLOW_EXPERIMENT_NAME to another name")
    location = urlparse(exp.artifact_location)
    if location.scheme not in ("", "file"):
        return  # a server's proxy or an object store: it answers for itself
    path = Path(unquote(location.path))
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(
            f"experiment {exp.name!r} keeps its artifacts in {path}, which this user cannot "
            f"write ({existing} is read-only); make it writable, or set MLFLOW_EXPERIMENT_NAME to "
            "a new experiment (its artifacts go beside the store)")


# --------------------------------------------------------------------------------------------
# Several processes at once

@contextmanager
def exclusive(key: str, waiting: Callable[[], None] = lambda: None) -> Iterator[None]:
    """One process at a time on this machine holds `key` on the current store; another one
    calls `waiting` and blocks until the first is done (its lock dies with it, even killed)."""
    digest = hashlib.sha256(f"{mlflow.get_tracking_uri()}\n{key}".encode()).hexdigest()[:20]
    # The temporary folder is shared by every user; a read-only descriptor takes the lock too,
    # so a lock file another user created works for all.
    fd = os.open(Path(tempfile.gettempdir()) / f"minimult-{digest}.lock", os.O_RDONLY | os.O_CREAT,
                 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waiting()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------
# Runs whose process is gone

def owner_tags() -> dict[str, str]:
    """Tags that say which process works on a run."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: f"{os.getpid()}:{_started(os.getpid())}"}


def _started(pid: int) -> str:
    """When process `pid` started (clock ticks since boot), so a reused pid is not mistaken for
    the process that made a run; "" where /proc cannot tell."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the command name


def process_gone(run: Run) -> bool:
    """Whether the process that works on `run` has certainly ended: it ran on this host and no
    process with its id and start time exists. Runs of other hosts cannot be told: False."""
    tags = run.data.tags
    if tags.get(HOST_TAG) != socket.gethostname() or PID_TAG not in tags:
        return False
    pid_text, _, started = tags[PID_TAG].partition(":")
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process: alive
        pass
    return bool(started) and _started(pid) not in ("", started)


def end_orphans(runs: Iterable[Run]) -> list[Run]:
    """Mark KILLED the RUNNING runs among `runs` whose process is gone; returns the runs that
    are still RUNNING in a live process (or one on another host)."""
    client = MlflowClient()
    alive = []
    for run in runs:
        if run.info.status != RunStatus.to_string(RunStatus.RUNNING):
            continue
        if process_gone(run):
            client.set_terminated(run.info.run_id, "KILLED")
        else:
            alive.append(run)
    return alive


# --------------------------------------------------------------------------------------------
# `mlflow run` and a server that went away

def note_refusal(message: str) -> None:
    """After a refused input under `mlflow run`: say so on the launcher run MLflow made for this
    step (the step made no run of its own), where the UI shows it.

    MLflow's CLI then marks the launcher FAILED and exits 1, whatever the step did: no setting
    changes that (see README, "When something goes wrong"). Ending or deleting the launcher
    first does not help either: MLflow 3.17 compares the run's status string with numbers when
    it decides whether to end it (mlflow/projects/__init__.py, `_maybe_set_run_terminated`), so
    it always sets it FAILED — on a deleted run, with a traceback. Best effort: an unreachable
    store leaves the launcher as it is.
    """
    launcher = os.environ.get("MLFLOW_RUN_ID")
    if not launcher:
        return
    try:
        uri = connect()
    except InputError:
        return  # the store itself was the trouble
    if is_server(uri) and unreachable(uri):  # it went away since it was checked
        return
    client = MlflowClient()
    try:
        tags = client.get_run(launcher).data.tags
        if MLFLOW_PROJECT_ENTRY_POINT in tags and "see_run_id" not in tags:
            client.set_tag(launcher, MLFLOW_RUN_NOTE,
                           f"`mlflow run` launcher of a step that refused its input: {message}")
    except MlflowException:
        pass


def server_gone() -> str | None:
    """Why the tracking server cannot be reached any more, or None (also for local stores).
    Once it is gone, MLflow's calls fail at once instead of retrying, so ending a run does not
    hang on it."""
    uri = mlflow.get_tracking_uri()
    reason = unreachable(uri) if is_server(uri) else None
    if reason:
        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
        os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(PROBE_SECONDS)
    return reason
