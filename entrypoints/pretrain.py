"""`pretrain`: MLM pretraining of one exp × seed, tracked in MLflow, resumable; several processes
with `torchrun --nproc-per-node N -m entrypoints.pretrain …` (DDP, the same effective batch)."""

from __future__ import annotations

import click

from entrypoints.common import (
    FLOAT_OR_DEFAULT,
    INT_OR_DEFAULT,
    flag,
    reuse_option,
    run_command,
)
from minimult_ml import experiments


def print_registry() -> None:
    click.echo(f"{'ID':>7}  {'exp':45s} size   lr      epochs  masking (mask, keep, random, knn)")
    for paper_id in [*experiments.PAPER_IDS, *experiments.REAL_IDS]:
        c = experiments.resolve(paper_id)
        click.echo(f"{c.paper_id:>7}  {c.exp:45s} {c.size:6s} {c.lr:<7g} {c.epochs:<7d} "
                   f"({c.p_mask:g}, {c.p_keep:g}, {c.p_random:g}, {c.p_knn:g})")


@click.command("pretrain")
@click.option("--exp", default="original", show_default=True,
              help="Paper ID or modification names joined by ';' or '+'.")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--epochs", type=INT_OR_DEFAULT,
              show_default="the exp's: 100; 200 for no-parallel; 2 in the real track")
@click.option("--max-steps", type=INT_OR_DEFAULT, show_default="0 = all epochs",
              help="Stop after this many optimizer steps.")
@click.option("--checkpoint-every", type=INT_OR_DEFAULT, show_default="0 = at the end only",
              help="Steps between checkpoints.")
@click.option("--batch-size", type=INT_OR_DEFAULT, show_default="256",
              help="Effective batch size.")
@click.option("--micro-batch-size", type=INT_OR_DEFAULT, show_default="0 = the batch size",
              help="Gradient accumulation: rows per pass.")
@click.option("--lr", type=FLOAT_OR_DEFAULT, show_default="the exp's: 2e-3; 1e-4 for BERT-base")
@click.option("--size", default="", show_default="the exp's: small in the lab, base in the real "
                                                 "track", help="small or base.")
@click.option("--dropout", type=FLOAT_OR_DEFAULT, show_default="0.1",
              help="Hidden and attention dropout.")
@click.option("--invert", default="", show_default="the second language: Fake-English, German",
              help="inv-order: the language reversed.")
@click.option("--data-run-id", default="",
              show_default="the newest default prepare run of the exp's track",
              help="The prepare run to train on.")
@click.option("--knn-run-id", default="", show_default="built or reused",
              help="knn-replace: the knn-space run to use.")
@click.option("--compile", "compile_", type=click.Choice(["auto", "true", "false"]),
              default="auto", show_default=True, help="torch.compile (auto = on CUDA only).")
@flag("--resume", "Continue the newest unfinished run with the same parameters and code.")
@click.option("--eval-every", type=int, default=0, show_default=True,
              help="Evaluate checkpoints at multiples of N steps, and the last (0 = none); "
                   "checkpoint_every defaults to N. Lab runs only.")
@reuse_option
@click.option("--list", "list_", is_flag=True, help="Print the experiment registry and exit.")
def command(exp: str, seed: int, epochs: int | None, max_steps: int | None,
            checkpoint_every: int | None, batch_size: int | None, micro_batch_size: int | None,
            lr: float | None, size: str, dropout: float | None, invert: str,
            data_run_id: str, knn_run_id: str, compile_: str, resume: bool, eval_every: int,
            reuse: str, list_: bool) -> None:
    """Pretrain BERT with MLM on a prepared corpus under an exp's modifications."""
    if list_:
        print_registry()
        return
    from minimult_ml.steps.pretrain import pretrain, training_overrides

    overrides = training_overrides(
        eval_every, seed=seed, epochs=epochs, max_steps=max_steps,
        checkpoint_every=checkpoint_every, batch_size=batch_size,
        micro_batch_size=micro_batch_size or None, lr=lr, size=size or None, dropout=dropout,
        invert=invert or None, compile=compile_)
    pretrain(exp, overrides, data_run_id or None, resume, eval_every, knn_run_id, reuse)


if __name__ == "__main__":
    run_command(command)
