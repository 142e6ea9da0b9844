"""What every entry point shares: one-line errors with exit code 2, and its MLflow run."""

from __future__ import annotations

import os
import signal
import sys

import click
import mlflow
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID as PARENT_RUN_ID

from minimult_ml import store, tracking
from minimult_ml.errors import InputError


def run_command(command: click.Command, args: list[str] | None = None) -> None:
    """Run a click command; bad input (ours or click's) is one line on stderr and exit code 2.

    SIGTERM (what a cluster sends before it evicts a pod) stops a step like Ctrl-C: pretrain
    writes its last checkpoint and leaves its run KILLED, resumable; the exit code is 128 + the
    signal's number, as a shell's.
    """
    # MLflow prints an experiment address after every run on a server, and MLflow 3's UI opens
    # that on its GenAI page; `analysis` prints the runs table's instead (minimult_ml.ui).
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    received = []

    def terminate(signum: int, frame: object) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    try:
        command.main(args, standalone_mode=False)
    except (InputError, click.ClickException) as e:
        message = e.format_message() if isinstance(e, click.ClickException) else str(e)
        store.note_refusal(message)
        click.echo(f"error: {message}", err=True)
        sys.exit(2)
    except click.Abort as e:
        click.echo(str(e) or "aborted", err=True)
        sys.exit(128 + (received[0] if received else signal.SIGINT))


def start_run(name: str, tags: dict[str, str], own_launcher: bool,
              params: dict[str, object] | None = None,
              experiment: str | None = None) -> mlflow.ActiveRun:
    """Start this step's run, a new one, in the project's experiment (or `experiment`), logging
    `params`.

    `mlflow run` makes a launcher run of its own (announced through MLFLOW_RUN_ID) and logs the
    MLproject parameters into it as given ("" for a default, a paper ID for an exp), which
    would clash with the resolved values logged here (MLflow params cannot change); and a bare
    `mlflow run` puts it in "Default", where later lookups would not find it. So the work goes
    into a run of its own, nested where the launcher is nested (a multistep workflow's steps
    stay under the workflow's run), and the launcher (when it launched this step: own_launcher)
    gets a note pointing at it.
    """
    experiment = store.experiment(experiment or tracking.experiment_name())
    client = MlflowClient()
    launcher = os.environ.get("MLFLOW_RUN_ID")
    given = client.get_run(launcher) if launcher else None
    parent = given.data.tags.get(PARENT_RUN_ID) if given else None
    if parent and given.info.experiment_id == experiment.experiment_id:
        tags = tags | {PARENT_RUN_ID: parent}
    run = client.create_run(experiment.experiment_id, run_name=name,
                            tags=tags | store.owner_tags())
    if own_launcher:
        note_launcher(f"The {tags['step']} run is {run.info.run_id} in experiment "
                      f"{experiment.name}.", run.info.run_id)
    active = mlflow.start_run(run_id=run.info.run_id)
    mlflow.log_params(params or {})
    return active


def note_launcher(text: str, run_id: str) -> None:
    """Under `mlflow run`, point the launcher run (left empty) at the run that did the work."""
    launcher = os.environ.get("MLFLOW_RUN_ID")
    if launcher and launcher != run_id:
        MlflowClient().set_tag(launcher, "mlflow.note.content", text)
        MlflowClient().set_tag(launcher, "see_run_id", run_id)


class Optional(click.ParamType):
    """A value of `inner`, or "" for the default (MLproject parameters cannot be left out)."""

    def __init__(self, inner: click.ParamType) -> None:
        self.inner = inner
        self.name = inner.name

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> object:
        if value is None or value == "":
            return None
        return self.inner.convert(value, param, ctx)


OPTIONAL_INT = Optional(click.INT)
OPTIONAL_FLOAT = Optional(click.FLOAT)
