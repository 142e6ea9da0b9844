"""What every entry point shares: one-line errors with exit code 2, and its MLflow run."""

from __future__ import annotations

import os
import sys

import click
import mlflow
from mlflow.tracking import MlflowClient

from minimult_ml import tracking
from minimult_ml.errors import InputError


def run_command(command: click.Command, args: list[str] | None = None) -> None:
    """Run a click command; bad input (ours or click's) is one line on stderr and exit code 2."""
    try:
        command.main(args, standalone_mode=False)
    except (InputError, click.ClickException) as e:
        message = e.format_message() if isinstance(e, click.ClickException) else str(e)
        click.echo(f"error: {message}", err=True)
        sys.exit(2)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)


def start_run(name: str, tags: dict[str, str], own_launcher: bool,
              experiment_name: str | None = None) -> mlflow.ActiveRun:
    """Start this step's run in the project's experiment (default: the lab's): the run
    `mlflow run` made for us (own_launcher) when it lives there, else a new one.

    A step run on behalf of another (prepare for pretrain) must not log into the other's
    launcher run, which `mlflow run` announces through MLFLOW_RUN_ID; and a launcher in another
    experiment (a bare `mlflow run` uses "Default") would hide the run from later lookups, so it
    only gets a note pointing at the real run.
    """
    experiment = mlflow.set_experiment(experiment_name or tracking.experiment_name())
    launcher = os.environ.get("MLFLOW_RUN_ID") if own_launcher else None
    client = MlflowClient()
    if launcher and client.get_run(launcher).info.experiment_id == experiment.experiment_id:
        mlflow.start_run(run_id=launcher)
        mlflow.set_tag("mlflow.runName", name)
        mlflow.set_tags(tags)
        return mlflow.active_run()
    run = client.create_run(experiment.experiment_id, run_name=name, tags=tags)
    if launcher:
        note_launcher(f"The {tags['step']} run is {run.info.run_id} in experiment "
                      f"{experiment.name}.", run.info.run_id)
    return mlflow.start_run(run_id=run.info.run_id)


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
