"""`minimult`: one sub-command per MLproject entry point."""

from __future__ import annotations

import click

from entrypoints import (
    analysis,
    evaluate,
    kendall_tau,
    knn_space,
    main,
    prepare,
    pretrain,
    sweep_manifest,
    transfer,
    xnli,
)
from entrypoints.common import run_command


@click.group()
def cli() -> None:
    """minimult-ml: why are multilingual language models multilingual? (Dufter & Schütze 2020)

    \b
    Each step is also an MLflow entry point; from the project folder (the Docker image's
    working directory), with MLFLOW_TRACKING_URI naming the server:
      mlflow run . -e pretrain --env-manager local -P exp=knn-replace [-P seed=42]
    """


cli.add_command(prepare.command)
cli.add_command(pretrain.command)
cli.add_command(evaluate.command)
cli.add_command(knn_space.command)
cli.add_command(kendall_tau.command)
cli.add_command(xnli.command)
cli.add_command(transfer.command)
cli.add_command(sweep_manifest.command)
cli.add_command(analysis.command)
cli.add_command(main.command)


def main() -> None:
    run_command(cli)
