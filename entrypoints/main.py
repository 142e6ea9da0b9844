"""`main`: the reproduction sweep — prepare, pretrain (evaluated) for every exp × seed, then the
analysis; each step its own `mlflow run`, finished ones reused, failed ones retried once."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from entrypoints.common import CommaList, reuse_option, run_command
from minimult_ml import experiments

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ("paper", "quick")  # minimult_ml.reproduction.PROFILES, without its imports
SEEDS = "0,42,43,100,101"  # paper Table 9


@click.command("main")
@click.option("--exps", type=CommaList(example="0,8,30", what="exps"),
              default=",".join(experiments.LAB_IDS),
              show_default=True,
              help="Exps: paper IDs or ';'/'+'-joined modification names.")
@click.option("--seeds", type=CommaList(click.INT, "0,42,43", "integers"), default=SEEDS,
              show_default=True)
@click.option("--profile", type=click.Choice(PROFILES), default="paper", show_default=True,
              help="paper: the paper's settings; quick: a CPU smoke check.")
@reuse_option
def command(exps: list[str], seeds: list[int], profile: str, reuse: str) -> None:
    """Reproduce Tables 1–2: every exp × seed prepared, pretrained and evaluated, then analysed."""
    from minimult_ml import reproduction

    outcomes = reproduction.main(exps, seeds, profile, str(ROOT), reuse)
    failed = [o for o in outcomes if o.status in ("failed", "skipped")]
    if failed:
        click.echo(f"sweep: {len(failed)} step(s) did not complete: "
                   + "; ".join(f"{o.step} ({o.status})" for o in failed), err=True)
        sys.exit(1)


if __name__ == "__main__":
    run_command(command)
