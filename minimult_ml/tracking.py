"""MLflow conventions (DESIGN §7): experiments, metric names, the one paged search with escaped
filters, run creation with provenance and UI metadata, artifact I/O, server errors."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import mlflow
import requests
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import (
    MLFLOW_GIT_COMMIT,
    MLFLOW_PARENT_RUN_ID,
    MLFLOW_RUN_NOTE,
    MLFLOW_SOURCE_NAME,
)

from minimult_ml import store
from minimult_ml.errors import InputError

LAB_EXPERIMENT = "minimult-lab"
REAL_EXPERIMENT = "minimult-real"
PACKAGES = ("torch", "transformers", "tokenizers", "mlflow", "fasttext-numpy2", "nltk")

# --- metric names (defined once) --------------------------------------------------------------
# The UI groups charts by the prefix before "/" and sorts groups and metrics by name: Table 1's
# nine numbers share the group TABLE1, whose leading digit sorts it first, with μ's chart first in
# it (a digit sorts before the layers' L); the other numbers of an evaluation follow per layer
# (L0/…, L8/…).
TABLE1 = "1_table1"
MULT_SCORE = f"{TABLE1}/0_mu"
PPL_TRAIN, PPL_DEV = f"{TABLE1}/ppl_train", f"{TABLE1}/ppl_dev"
KENDALL_TAU = "kendall_tau/"  # + language code
DEV_SENTENCES = "eval/dev_sentences"  # how many dev sentences an evaluation scored on
LOSS = "loss/train"  # logged by the training loop


def align_f1(layer: int) -> str:
    return f"{TABLE1}/L{layer}_align_f1"


def retrieval_p1(layer: int) -> str:
    return f"{TABLE1}/L{layer}_retrieval_p1"


def translation_p1(layer: int) -> str:
    return f"{TABLE1}/L{layer}_translation_p1"


# Table 1's columns, in the paper's order: μ, layer 0 (F1, ρ, τ), layer 8, perplexity; by the
# evaluation's own names (also the columns of minimult_ml/paper_tables.json) and as tracked.
TABLE1_SCORES = ("mult_score", "align_f1/L0", "retrieval_p1/L0", "translation_p1/L0",
                 "align_f1/L8", "retrieval_p1/L8", "translation_p1/L8", "ppl/train", "ppl/dev")
TABLE1_METRICS = (MULT_SCORE, align_f1(0), retrieval_p1(0), translation_p1(0), align_f1(8),
                  retrieval_p1(8), translation_p1(8), PPL_TRAIN, PPL_DEV)
# An evaluation's own names (`evaluation.evaluate`) of Table 1's numbers.
_TABLE1_SCORES = {"mult_score": MULT_SCORE, "ppl/train": PPL_TRAIN, "ppl/dev": PPL_DEV}
# Forward and backward Argmax alignment predict exactly one edge per word against a one-to-one
# gold alignment: as many predicted edges as gold ones, so their precision = recall = F1. Only
# the F1 is logged.
_SAME_AS_F1 = re.compile(r"align_(forward|backward)_(precision|recall)")


def evaluation_metrics(scores: dict[str, float]) -> dict[str, float]:
    """An evaluation's scores (`evaluation.evaluate`'s names, e.g. `align_f1/L0`) under their
    tracked names, each number once: Table 1's in TABLE1, the others per layer (a real-track
    run's per language: `retrieval_p1/L8/de` → `L8/retrieval_p1/de`)."""
    tracked = {}
    for key, value in scores.items():
        base, _, rest = key.partition("/L")
        layer, _, code = rest.partition("/")  # the real track: per language, `…/L8/de`
        if key in _TABLE1_SCORES:
            tracked[_TABLE1_SCORES[key]] = value
        elif base in ("align_f1", "retrieval_p1", "translation_p1") and layer.isdigit() \
                and not code:
            tracked[f"{TABLE1}/L{layer}_{base}"] = value
        elif not _SAME_AS_F1.fullmatch(base):
            tracked[f"L{layer}/{base}" + f"/{code}" * bool(code) if layer.isdigit()
                    else key] = value
    return tracked


def by_language(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    """{"xnli_acc/de": .7, "lr": …} → {"de": .7} for prefix "xnli_acc/"."""
    return {k.removeprefix(prefix): v for k, v in metrics.items() if k.startswith(prefix)}


# --- the server --------------------------------------------------------------------------------

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
    checked on first use (store.connect: a dead server is one line within seconds).

    Only the server's own errors and the network's are caught: anything else is a bug and keeps
    its traceback. A missing run or artifact (RESOURCE_DOES_NOT_EXIST) is the caller's to word.
    """
    store.connect()
    try:
        yield
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise
        raise InputError(f"tracking server {mlflow.get_tracking_uri()} failed: "
                         f"{str(e).splitlines()[0]}; check MLFLOW_TRACKING_URI") from None
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
            ConnectionError) as e:
        raise InputError(f"tracking server {mlflow.get_tracking_uri()} is unreachable "
                         f"({type(e).__name__}); start it or fix MLFLOW_TRACKING_URI") from None


def quote(value: object) -> str | None:
    """`value` as a string literal of MLflow's search syntax, or None where it has none.

    MLflow strips the quotes of a literal and unescapes nothing, so a value is written between
    quotes it does not contain; one with both kinds, or ending in a backslash (which would
    escape the closing quote), cannot be written at all.
    """
    text = str(value)
    if text.endswith("\\"):
        return None
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    return None


def search(experiments: list[str], query: str = "", *, max_results: int | None = None,
           page_size: int = 1000) -> list[Run]:
    """Every run matching `query` in those of `experiments` that exist, newest first, read page
    by page (a server returns at most 1,000 runs a request); at most `max_results`."""
    client = MlflowClient()
    with server_errors():
        ids = [e.experiment_id for name in experiments
               if (e := client.get_experiment_by_name(name)) is not None]
    runs: list[Run] = []
    token = None
    while ids:
        with server_errors():
            page = client.search_runs(ids, query, order_by=["attributes.start_time DESC"],
                                      max_results=min(page_size, max_results or page_size),
                                      page_token=token)
        runs += page
        token = page.token
        if not token or (max_results and len(runs) >= max_results):
            break
    return runs[:max_results] if max_results else runs


def step_query(step: str, params: dict[str, object] | None = None,
               finished: bool | None = True) -> str:
    """The filter of runs of `step` with these params (those a filter can express): finished,
    not finished (False) or any (None)."""
    clauses = [f"tags.step = {quote(step)}"]
    if finished is not None:
        clauses.append(f"attributes.status {'=' if finished else '!='} 'FINISHED'")
    clauses += [f"params.`{k}` = {literal}" for k, v in (params or {}).items()
                if (literal := quote(v)) is not None]
    return " and ".join(clauses)


def find_runs(step: str, params: dict[str, object], experiment: str,
              finished: bool | None = True) -> list[Run]:
    """Runs of `step` in `experiment` whose params equal `params`, newest first: the finished
    ones, those killed, failed or still marked running (finished=False), or all (None)."""
    found = search([experiment], step_query(step, params, finished))
    # Also what the filter could not say (a value with both kinds of quotes).
    return [r for r in found if all(r.data.params.get(k) == str(v) for k, v in params.items())]


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


def download(run_id: str, path: str) -> Path:
    """A local copy of an artifact (file or folder; "" for all) of a run. One the run should have
    but its store has lost (deleted, moved, another machine's local folder) is one clear line."""
    try:
        with server_errors():
            return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path))
    except MlflowException as e:  # RESOURCE_DOES_NOT_EXIST: server_errors leaves it to us
        raise InputError(f"run {run_id}: its artifacts{f' at {path!r}' if path else ''} cannot "
                         f"be read ({str(e).splitlines()[0]}); the artifact store lost them: run "
                         "the step again with reuse=never, or pass another run") from None


def artifact_exists(run_id: str, path: str) -> bool:
    """Whether the run has an artifact (file or folder) at `path`."""
    parent, _, _ = path.rstrip("/").rpartition("/")
    with server_errors():
        return any(f.path == path for f in MlflowClient().list_artifacts(run_id, parent or None))


# --- provenance ----------------------------------------------------------------------------------

def git_commit() -> tuple[str, bool | None]:
    """The checkout's commit and whether its tree has uncommitted changes; in the Docker image,
    which has no repository, MINIMULT_GIT_COMMIT (the Dockerfile's GIT_COMMIT build argument)
    and None for the dirty flag."""
    here = Path(__file__).parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=here, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, cwd=here, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get("MINIMULT_GIT_COMMIT") or "unknown", None
    return commit, bool(status.strip())


def provenance() -> dict[str, str]:
    """Git commit, dirty flag, our version and package versions, logged as params with every
    run."""
    commit, dirty = git_commit()
    return ({"git_commit": commit, "git_dirty": "unknown" if dirty is None else str(dirty).lower(),
             "version_minimult-ml": metadata.version("minimult-ml")}
            | {f"version_{p}": metadata.version(p) for p in PACKAGES})


def program() -> str:
    """This process's program: an entry point's module (`entrypoints.pretrain`) or its name."""
    path = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    if path.suffix == ".py" and path.parent.name == "entrypoints":
        return f"entrypoints.{path.stem}"
    return path.name


def command_line() -> str:
    """How this process was started, as a user would type it again."""
    name = program()
    start = ["python", "-m", name] if name.startswith("entrypoints.") else [name]
    return shlex.join(start + sys.argv[1:])


# --- runs ----------------------------------------------------------------------------------------

def start_run(name: str, tags: dict[str, str], params: dict[str, object], experiment: str,
              description: str) -> mlflow.ActiveRun:
    """Start a new run of a step in `experiment`, logging `params`, with what the UI shows of a
    run: its source (this entry point, the git commit), user and a description (the note) that
    ends with the command that made it.

    Under `mlflow run` (MLFLOW_RUN_ID names mlflow's own launcher run) the work still goes into
    a run of its own: mlflow logs the MLproject parameters into its launcher as typed ("" for a
    default, a paper ID for an exp), which would clash with the resolved values logged here
    (MLflow params cannot change), and a bare `mlflow run` puts the launcher in "Default". The
    launcher is then labelled as such and tucked under the step's run (see `label_launcher`).
    """
    from mlflow.tracking.context.registry import resolve_tags

    with server_errors():
        exp = store.experiment(experiment)  # artifacts beside the store, checked
        client = MlflowClient()
        launcher = os.environ.get("MLFLOW_RUN_ID")
        given = client.get_run(launcher) if launcher else None
        parent = given.data.tags.get(MLFLOW_PARENT_RUN_ID) if given else None
        if parent and given.info.experiment_id == exp.experiment_id:
            # A step of a sweep: linked to it by a tag, not nested under it, so that the runs
            # table and the charts compare the step runs of an experiment without expanding.
            tags = tags | {"sweep_run_id": parent}
        note = f"{description}\n\nCommand: `{command_line()}`"
        shown = {MLFLOW_RUN_NOTE: note, MLFLOW_SOURCE_NAME: program()}
        commit, _ = git_commit()
        if commit != "unknown":  # also in the Docker image, which has no repository to ask
            shown[MLFLOW_GIT_COMMIT] = commit
        run = client.create_run(exp.experiment_id, run_name=name,
                                tags=resolve_tags(tags) | shown | store.owner_tags())
        label_launcher(run.info.run_id, name, tags["step"])
        active = mlflow.start_run(run_id=run.info.run_id)
        mlflow.log_params(params)
    return active


def name_launcher(step: str) -> None:
    """Under `mlflow run`, label its launcher run as soon as the step starts, so that even a
    step that fails on bad input leaves no run without a name and a step tag."""
    launcher = os.environ.get("MLFLOW_RUN_ID")
    if not launcher:
        return
    client = MlflowClient()
    with server_errors():
        client.set_tag(launcher, "step", "launcher")
        client.set_tag(launcher, "launched_step", step)
        client.set_tag(launcher, MLFLOW_RUN_NOTE, f"`mlflow run` launcher of a {step} step.")
        client.update_run(launcher, name=f"launch-{step}")


def label_launcher(run_id: str, name: str, step: str, what: str = "ran") -> None:
    """Under `mlflow run`, say on its launcher run what it is and where the work went: a name,
    `step=launcher`, a note and `see_run_id`; nested under the step's run when both share an
    experiment, so the runs table lists the step runs on top."""
    launcher = os.environ.get("MLFLOW_RUN_ID")
    if not launcher or launcher == run_id:
        return
    client = MlflowClient()
    with server_errors():
        target = client.get_run(run_id)
        tags = {"step": "launcher", "launched_step": step, "see_run_id": run_id,
                MLFLOW_RUN_NOTE: f"`mlflow run` launcher: it {what} the {step} run {run_id} "
                                 f"({name}), which holds the resolved parameters and results."}
        if client.get_run(launcher).info.experiment_id == target.info.experiment_id:
            tags[MLFLOW_PARENT_RUN_ID] = run_id
        for key, value in tags.items():
            client.set_tag(launcher, key, value)
        client.update_run(launcher, name=f"launch-{name}")
