"""`xnli`: fine-tune a pretrain run's model on English NLI, test it zero-shot in every language
(paper §5.1, Table 3), as one MLflow run linked to the pretrain run — `transfer` with
task=xnli."""

from __future__ import annotations

import click

from entrypoints.common import run_command, transfer_options


@click.command("xnli")
@transfer_options
def command(run_id: str, step: int | None, train_spec: str, test_spec: str,
            languages: list[str] | None, train_examples: int, epochs: float, batch_size: int,
            lr: float, seed: int, reuse: str) -> None:
    """Zero-shot cross-lingual transfer on XNLI of a pretrained model."""
    from minimult_ml.steps.transfer import transfer_run
    from minimult_ml.transfer import FinetuneConfig

    transfer_run(run_id, step, "xnli", train_spec, test_spec, languages or [], train_examples,
                 "none", FinetuneConfig(epochs, batch_size, lr, seed=seed), reuse)


if __name__ == "__main__":
    run_command(command)
