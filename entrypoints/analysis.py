"""`analysis`: Tables 1–4 and the training curves from the tracking server, beside the paper's
numbers, printed and logged as an analysis run's artifacts."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click
import mlflow

from analysis import report
from entrypoints.common import run_command, start_run
from minimult_ml import tracking, ui
from minimult_ml.errors import InputError

REAL_EXPERIMENT = "minimult-real"


def parse_tables(spec: str) -> list[int]:
    try:
        tables = sorted({int(t) for t in spec.split(",") if t.strip()})
    except ValueError:
        tables = []
    if not tables or not set(tables) <= set(report.TABLES):
        raise InputError(f"tables {spec!r}: give table numbers from "
                         f"{','.join(map(str, report.TABLES))}, like 1,2")
    return tables


@click.command("analysis")
@click.option("--tables", default="1,2,3,4", show_default=True, help="Which of Tables 1–4.")
@click.option("--experiment", default="",
              help="Experiment of the lab runs (default: MLFLOW_EXPERIMENT_NAME or minimult-lab).")
@click.option("--real-experiment", default=REAL_EXPERIMENT, show_default=True,
              help="Experiment of the real-track xnli runs (Table 3).")
def command(tables: str, experiment: str, real_experiment: str) -> None:
    """Tables 1–4 and Figures 6–7 from the tracking server, beside the paper's numbers."""
    wanted = parse_tables(tables)
    experiment = experiment or tracking.experiment_name()
    # Everything is built before the run exists, so a failure leaves no half-written run.
    with tempfile.TemporaryDirectory() as tmp:
        text = report.build(wanted, experiment, real_experiment, Path(tmp))
        params = {"tables": ",".join(map(str, wanted)), "experiment": experiment,
                  "real_experiment": real_experiment}
        with start_run("analysis", {"step": "analysis"}, True, params | tracking.provenance(),
                       experiment=experiment) as run:
            mlflow.log_artifacts(tmp)
    click.echo(text)
    click.echo(f"analysis: finished run {run.info.run_id} in experiment {experiment};\nits "
               "artifacts hold the tables as Markdown, LaTeX and CSV, and figures/")
    click.echo(ui.where_to_look(experiment))


if __name__ == "__main__":
    run_command(command)
