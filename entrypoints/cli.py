"""`minimult`: one sub-command per MLproject entry point."""

from __future__ import annotations

import click

from entrypoints import analysis, evaluate, kendall_tau, knn_space, prepare, pretrain
from entrypoints import main as sweep
from entrypoints.common import run_command


@click.group()
def cli() -> None:
    """minimult-ml: why are multilingual language models multilingual? (Dufter & Schütze 2020)"""


cli.add_command(prepare.command)
cli.add_command(pretrain.command)
cli.add_command(evaluate.command)
cli.add_command(knn_space.command)
cli.add_command(kendall_tau.command)
cli.add_command(analysis.command)
cli.add_command(sweep.command)


def main() -> None:
    run_command(cli)
