"""`xnli`: fine-tune a pretrain run's model on English NLI, test it zero-shot in every language
(paper §5.1, Table 3), as one MLflow run linked to the pretrain run — `transfer` with
task=xnli."""

from __future__ import annotations

import click

from entrypoints.common import run_command
from entrypoints.transfer import options, run_transfer
from minimult_ml.transfer import FinetuneConfig


@click.command("xnli")
@options
def command(run_id: str, step: int | None, train_spec: str, test_spec: str, languages: str,
            train_examples: int, epochs: float, batch_size: int, lr: float, seed: int) -> None:
    """Zero-shot cross-lingual transfer on XNLI of a pretrained model."""
    codes = [c.strip() for c in languages.split(",") if c.strip()]
    run_transfer(run_id, step, "xnli", train_spec, test_spec, codes, train_examples, "none",
                 FinetuneConfig(epochs, batch_size, lr, seed=seed))


if __name__ == "__main__":
    run_command(command)
