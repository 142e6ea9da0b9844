"""What every entry point shares: one-line errors with exit code 2, and its MLflow run."""

from __future__ import annotations

import os
import sys

import click
import mlflow
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID as PARENT_RUN_ID

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
              params: dict[str, object] | None = None,
              experiment: str | None = None) -> mlflow.ActiveRun:
    """Start this step's run in the project's experiment (or `experiment`), logging `params`:
    the run `mlflow run` made for us (own_launcher) when it lives there, else a new one.

    A step run on behalf of another (prepare for pretrain) must not log into the other's
    launcher run, which `mlflow run` announces through MLFLOW_RUN_ID; and a launcher in another
    experiment (a bare `mlflow run` uses "Default") would hide the run from later lookups, so it
    only gets a note pointing at the real run. Neither can a launcher whose MLproject parameters
    (logged by `mlflow run` as given: `exp=0`, `epochs=`) differ from the resolved ones we log
    (`exp=original`, `epochs=100`): MLflow params cannot change.
    """
    experiment = mlflow.set_experiment(experiment or tracking.experiment_name())
    params = params or {}
    launcher = os.environ.get("MLFLOW_RUN_ID") if own_launcher else None
    client = MlflowClient()
    given = client.get_run(launcher) if launcher else None
    if given and _fits(given, experiment.experiment_id, params):
        mlflow.start_run(run_id=launcher)
        mlflow.set_tag("mlflow.runName", name)
        mlflow.set_tags(tags)
    else:
        # In a multistep workflow the launcher is nested under the workflow's run: so is ours.
        parent = given.data.tags.get(PARENT_RUN_ID) if given else None
        if parent and given.info.experiment_id == experiment.experiment_id:
            tags = tags | {PARENT_RUN_ID: parent}
        run = client.create_run(experiment.experiment_id, run_name=name, tags=tags)
        if launcher:
            note_launcher(f"The {tags['step']} run is {run.info.run_id} in experiment "
                          f"{experiment.name}.", run.info.run_id)
        mlflow.start_run(run_id=run.info.run_id)
    mlflow.log_params(params)
    return mlflow.active_run()


def _fits(run: Run, experiment_id: str, params: dict[str, object]) -> bool:
    return run.info.experiment_id == experiment_id and all(
        run.data.params.get(k, str(v)) == str(v) for k, v in params.items())


def note_launcher(text: str, run_id: str) -> None:
    """Under `mlflow run`, point the launcher run (left empty) at the run that did the work."""
    launcher = os.environ.get("MLFLOW_RUN_ID")
    if launcher and launcher != run_id:
        MlflowClient().set_tag(launcher, "mlflow.note.content", text)
        MlflowClient().set_tag(launcher, "see_run_id", run_id)
