"""What every step's run shares: its experiment, its tags, the code version that made it, and
the one reuse decision (parameters and code).

A step's code version is a fingerprint of the source of the library modules that compute it —
the step's science modules and everything they import from `minimult_ml`, transitively — so it
needs no git (the Docker image has none) and ignores edits elsewhere (a README, another step, the
orchestration in `steps/`, `tracking` or `entrypoints/`, whose choices are logged as params).
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

import click
import mlflow
from mlflow.entities import Run

from minimult_ml import store, tracking
from minimult_ml.errors import InputError
from minimult_ml.steps import REUSE

PACKAGE = Path(__file__).resolve().parents[1]
CODE_TAG = "code_version"  # the fingerprint of the step's code, on every step run
# The modules whose results a step's run holds; their minimult_ml imports count too.
STEP_MODULES = {
    "prepare": ("prepare",),
    "knn-space": ("crosslingual",),
    "pretrain": ("training",),
    "evaluate": ("evaluation",),
    "transfer": ("transfer", "tasks", "experiments"),
    "kendall-tau": ("wordorder", "representations", "parallel"),
}
# Orchestration: what these modules decide is logged as params, so editing them changes no
# step's code version.
NOT_SCIENCE = ("steps", "tracking", "reproduction", "errors")


def experiment_of(track: str) -> str:
    """The experiment of a track's runs: minimult-lab or minimult-real (unless overridden by
    MLFLOW_EXPERIMENT_NAME or `mlflow run --experiment-name`)."""
    return tracking.experiment_name(tracking.REAL_EXPERIMENT if track == "real"
                                    else tracking.LAB_EXPERIMENT)


def _imports(module: str, package: Path) -> set[str]:
    """The minimult_ml modules `module` imports (as names relative to the package)."""
    tree = ast.parse((package / f"{module.replace('.', '/')}.py").read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            local = name.removeprefix(f"{package.name}.")
            if name.startswith(f"{package.name}.") and \
                    (package / f"{local.replace('.', '/')}.py").is_file():
                found.add(local)
    return found


def code_modules(roots: tuple[str, ...], package: Path = PACKAGE) -> list[str]:
    """`roots` and every minimult_ml module they import, transitively, minus orchestration."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        module = todo.pop()
        if module in seen or module.split(".")[0] in NOT_SCIENCE:
            continue
        seen.add(module)
        todo += _imports(module, package)
    return sorted(seen)


def fingerprint(roots: tuple[str, ...], package: Path = PACKAGE) -> str:
    """sha256 (16 hex digits) over the names and source of `code_modules(roots)`."""
    digest = hashlib.sha256()
    for module in code_modules(roots, package):
        digest.update(module.encode() + b"\0")
        digest.update((package / f"{module.replace('.', '/')}.py").read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@functools.cache
def code_version(step: str) -> str:
    """The code version of `step` in this process (the source does not change under it)."""
    return fingerprint(STEP_MODULES[step])


def check_reuse(reuse: str) -> None:
    if reuse not in REUSE:
        raise InputError(f"reuse={reuse!r}: use same-code (reuse a finished run with the same "
                         "parameters made by the same code), any (ignore the code) or never")


def choose(step: str, runs: list[Run], reuse: str) -> Run | None:
    """Of the finished runs of `step` with the right parameters (newest first), the one to
    reuse: under `same-code` the newest made by the step's current code, saying which ones
    made by other code it passes over; under `any` the newest; under `never` none."""
    check_reuse(reuse)
    if reuse == "never" or not runs:
        return None
    if reuse == "any":
        return runs[0]
    current = code_version(step)
    same = [r for r in runs if r.data.tags.get(CODE_TAG) == current]
    if not same or same[0] is not runs[0]:
        stale = runs[0]
        made_by = stale.data.tags.get(CODE_TAG, "code that recorded no version")
        click.echo(f"{step}: not reusing run {stale.info.run_id} (same parameters, made by "
                   f"{made_by}, {step}'s code is now {current}); reuse=any would reuse it")
    return same[0] if same else None


def find_finished(step: str, params: dict[str, object], experiment: str,
                  reuse: str) -> Run | None:
    """The finished run of `step` with `params` to reuse, or None (see `choose`). Before that,
    the experiment is checked (a deleted one, or artifacts this user cannot write, fail before
    any work) and the RUNNING runs with `params` whose process is gone are marked KILLED."""
    check_reuse(reuse)
    store.check_experiment(experiment)
    store.end_orphans(tracking.find_runs(step, params, experiment, finished=False))
    if reuse == "never":
        return None
    return choose(step, tracking.find_runs(step, params, experiment), reuse)


def reused(step: str, run: Run) -> str:
    """Say that `run` is reused (also on `mlflow run`'s launcher run); its id."""
    run_id = run.info.run_id
    click.echo(f"{step}: reusing finished run {run_id} (reuse=never builds anew)")
    tracking.label_launcher(run_id, run.info.run_name, step, "reused")
    return run_id


def start(step: str, name: str, tags: dict[str, str], params: dict[str, object],
          experiment: str, description: str) -> mlflow.ActiveRun:
    """Start a new run of `step`: tagged with the step and its code version, logging `params`
    and the provenance (git commit, dirty flag, package versions)."""
    tags = {"step": step, CODE_TAG: code_version(step)} | tags
    return tracking.start_run(name, tags, params | tracking.provenance(), experiment,
                              description)
