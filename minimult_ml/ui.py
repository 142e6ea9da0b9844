"""Where to look at an experiment's runs in the MLflow UI.

MLflow 3 opens an experiment on its GenAI "Overview / Traces" page unless the URL asks for the
machine-learning view, whose first tab is the runs table; so every address printed for a
researcher names the experiment and that view.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from urllib.parse import urlencode

import mlflow
from mlflow.tracking import MlflowClient

from minimult_ml import tracking

LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves by default


def runs_url(base: str, experiment_id: str) -> str:
    """The runs table of an experiment on the MLflow UI at `base`."""
    query = urlencode({"workflowType": "machine_learning"})
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"


def _mlflow_command() -> str:
    """The `mlflow` of this Python environment, relative when it is below the working
    directory (as `.venv/bin/mlflow`)."""
    beside = Path(sys.executable).with_name("mlflow")
    found = str(beside) if beside.exists() else shutil.which("mlflow")
    if not found:
        return "mlflow"
    relative = os.path.relpath(found)
    return found if relative.startswith("..") else relative


def where_to_look(experiment: str) -> str:
    """Where the runs table of `experiment` is: its address on the tracking server, or for a
    local store the command that serves the UI on it and the address to open then. A few
    short lines, each address on its own so that a terminal makes it clickable."""
    uri = mlflow.get_tracking_uri()
    with tracking.server_errors():
        found = MlflowClient().get_experiment_by_name(experiment)
    if found is None:
        return f"No experiment {experiment!r} on {uri} yet."
    if uri.startswith(("http://", "https://")):
        return (f"The runs table of {experiment} in the MLflow UI:\n"
                f"  {runs_url(uri, found.experiment_id)}")
    return (f"The runs table of {experiment} in the MLflow UI: start it with\n"
            f"  {_mlflow_command()} ui --backend-store-uri {uri}\n"
            f"and open\n  {runs_url(LOCAL_UI, found.experiment_id)}")
