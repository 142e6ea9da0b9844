"""`analysis`: Tables 1–4 and the training curves from the tracking server, beside the paper's
numbers; printed, and with --log kept as an analysis run's artifacts."""

from __future__ import annotations

import click

from entrypoints.common import CommaList, flag, run_command


@click.command("analysis")
@click.option("--tables", default="1,2,3,4",
              type=CommaList(click.IntRange(1, 4), "1,2", "table numbers from 1,2,3,4"),
              show_default=True, help="Which of Tables 1–4.")
@click.option("--experiment", default="",
              show_default="MLFLOW_EXPERIMENT_NAME, else minimult-lab",
              help="Experiment of the lab runs.")
@click.option("--real-experiment", default="",
              show_default="MLFLOW_EXPERIMENT_NAME, else minimult-real",
              help="Experiment of the real-track transfer runs (Tables 3–4).")
@flag("--log", "Also keep the tables and figures as the artifacts of a new analysis run.")
def command(tables: list[int], experiment: str, real_experiment: str, log: bool) -> None:
    """Tables 1–4 and Figures 6–7 from the tracking server, beside the paper's numbers."""
    from analysis import report
    from minimult_ml import tracking, ui

    # As the steps choose them: an MLFLOW_EXPERIMENT_NAME holds both tracks' runs.
    experiment = experiment or tracking.experiment_name()
    real_experiment = real_experiment or tracking.experiment_name(tracking.REAL_EXPERIMENT)
    text, run_id = report.analyse(sorted(tables), experiment, real_experiment, log)
    click.echo(text)
    if run_id:
        click.echo(f"analysis: finished run {run_id} in experiment {experiment};\nits "
                   "artifacts hold the tables as Markdown, LaTeX and CSV, and figures/")
    click.echo(ui.where_to_look(experiment))


if __name__ == "__main__":
    run_command(command)
