"""`analysis`: Tables 1–4 and the training curves from the tracking server, beside the paper's
numbers; printed, and with --log kept as an analysis run's artifacts."""

from __future__ import annotations

import click

from entrypoints.common import CommaList, flag, run_command

TABLES = (1, 2, 3, 4)
REAL_EXPERIMENT = "minimult-real"  # minimult_ml.tracking.REAL_EXPERIMENT, without its imports


@click.command("analysis")
@click.option("--tables", default="1,2,3,4",
              type=CommaList(click.IntRange(1, 4), "1,2", "table numbers from 1,2,3,4"),
              show_default=True, help="Which of Tables 1–4.")
@click.option("--experiment", default="",
              show_default="MLFLOW_EXPERIMENT_NAME, else minimult-lab",
              help="Experiment of the lab runs.")
@click.option("--real-experiment", default=REAL_EXPERIMENT, show_default=True,
              help="Experiment of the real-track xnli runs (Table 3).")
@flag("--log", "Also keep the tables and figures as the artifacts of a new analysis run.")
def command(tables: list[int], experiment: str, real_experiment: str, log: bool) -> None:
    """Tables 1–4 and Figures 6–7 from the tracking server, beside the paper's numbers."""
    from analysis import report

    text, run_id = report.analyse(sorted(tables), experiment or None, real_experiment, log)
    click.echo(text)
    if run_id:
        click.echo(f"analysis: finished run {run_id}; its artifacts hold the tables as Markdown, "
                   "LaTeX and CSV, and figures/")


if __name__ == "__main__":
    run_command(command)
