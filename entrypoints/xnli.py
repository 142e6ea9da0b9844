"""`xnli`: fine-tune a pretrain run's model on English NLI, test it zero-shot in every language
(paper §5.1, Table 3), as one MLflow run linked to the pretrain run."""

from __future__ import annotations

import click

from entrypoints.common import INT_OR_DEFAULT, CommaList, OrDefault, run_command


@click.command("xnli")
@click.option("--run-id", required=True, help="The pretrain run whose model is fine-tuned.")
@click.option("--step", type=INT_OR_DEFAULT, show_default="the final model",
              help="A checkpoint step.")
@click.option("--train", "train_spec", default="hub", show_default=True,
              help="English NLI training data: hub, multinli:PATH or xnli-mt:PATH.")
@click.option("--test", "test_spec", default="hub", show_default=True,
              help="XNLI test data: hub or xnli-tsv:PATH.")
@click.option("--languages", type=OrDefault(CommaList(example="en,de", what="language codes")),
              default="",
              show_default="all of the model's", help="Languages tested, comma-separated.")
@click.option("--train-examples", type=int, default=0, show_default=True,
              help="Fine-tune on the first N pairs only (0 = all).")
@click.option("--epochs", type=float, default=3.0, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--lr", type=float, default=2e-5, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
def command(run_id: str, step: int | None, train_spec: str, test_spec: str,
            languages: list[str] | None, train_examples: int, epochs: float, batch_size: int,
            lr: float, seed: int) -> None:
    """Zero-shot cross-lingual transfer on XNLI of a pretrained model."""
    from minimult_ml.nli import FinetuneConfig
    from minimult_ml.steps.xnli import xnli

    xnli(run_id, step, train_spec, test_spec, languages or [], train_examples,
         FinetuneConfig(epochs, batch_size, lr, seed=seed))


if __name__ == "__main__":
    run_command(command)
