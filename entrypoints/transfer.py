"""`transfer`: fine-tune a pretrain run's model on an English task, test it zero-shot in every
language (paper §5.1, Table 3), as one MLflow run linked to the pretrain run. `xnli` is this
with task=xnli."""

from __future__ import annotations

import click

from entrypoints.common import run_command, transfer_options

TASKS = ("bible-genre", "xnli")  # minimult_ml.tasks.TASKS, without its imports


@click.command("transfer")
@click.option("--task", default="bible-genre", show_default=True,
              help=f"The task: {', '.join(TASKS)}.")
@click.option("--in-language", default="",
              show_default="all for bible-genre, none for xnli",
              help="Languages whose in-language bound (fine-tuned and tested in the language) "
                   "is measured: all, none or codes.")
@transfer_options
def command(task: str, in_language: str, run_id: str, step: int | None, train_spec: str,
            test_spec: str, languages: list[str] | None, train_examples: int, epochs: float,
            batch_size: int, lr: float, seed: int, reuse: str) -> None:
    """Zero-shot cross-lingual transfer of a pretrained model (bible-genre or xnli)."""
    from minimult_ml.steps.transfer import transfer_run
    from minimult_ml.transfer import FinetuneConfig

    transfer_run(run_id, step, task, train_spec, test_spec, languages or [], train_examples,
                 in_language, FinetuneConfig(epochs, batch_size, lr, seed=seed), reuse)


if __name__ == "__main__":
    run_command(command)
