"""`evaluate`: Table 1's numbers for checkpoints of a pretrain run, logged into that run."""

from __future__ import annotations

import click

from entrypoints.common import CommaList, run_command


@click.command("evaluate")
@click.option("--run-id", required=True, help="The pretrain run to evaluate.")
@click.option("--checkpoints", default="last", show_default=True,
              help="last, all, or steps like 100,200.")
@click.option("--layers", type=CommaList(click.INT, "0,8", "layer numbers"), default="0,8",
              show_default=True,
              help="Layers (0 = embeddings).")
@click.option("--dev-sentences", type=int, default=10_000, show_default=True)
def command(run_id: str, checkpoints: str, layers: list[int], dev_sentences: int) -> None:
    """Evaluate multilinguality and model fit of a pretrain run's checkpoints."""
    from minimult_ml.steps.evaluate import evaluate_run

    evaluate_run(run_id, checkpoints, layers, dev_sentences)


if __name__ == "__main__":
    run_command(command)
