"""`main`: the reproduction sweep of a track — prepare, pretrain (evaluated) for every exp × seed
(the real track: then transfer and kendall-tau), then the analysis; each step its own `mlflow
run`, finished ones reused, failed ones retried once."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from entrypoints.common import CommaList, OrDefault, reuse_option, run_command
from minimult_ml import bibles, experiments, reproduction

ROOT = Path(__file__).resolve().parents[1]


@click.command("main")
@click.option("--track", type=click.Choice(["lab", "real"]), default="lab", show_default=True,
              help="lab: Tables 1–2 on English + Fake-English; real: Tables 3–4 on the Bibles' "
                   "languages (pretrain, bible-genre transfer, kendall-tau).")
@click.option("--exps", type=OrDefault(CommaList(example="0,8,30", what="exps")),
              show_default="every row of the track: "
                           f"{','.join(experiments.LAB_IDS)} (lab), "
                           f"{','.join(experiments.REAL_IDS)} (real)",
              help="Exps: paper IDs or ';'/'+'-joined modification names.")
@click.option("--seeds", type=CommaList(click.INT, "0,42,43", "integers"),
              default=",".join(map(str, reproduction.SEEDS)), show_default=True)
@click.option("--profile", type=click.Choice(list(reproduction.PROFILES)), default="paper",
              show_default=True,
              help="paper: the paper's settings (the real track: every Bible language, for a "
                   "GPU); quick: a CPU-sized run.")
@click.option("--languages", type=OrDefault(CommaList(example="en,de,hi,fr", what="languages")),
              show_default="the profile's: en,de,hi (quick), every Bible language (paper)",
              help="The real track's Bible languages, English among them; any of "
                   f"{','.join(bibles.languages())}.")
@reuse_option
def command(track: str, exps: list[str] | None, seeds: list[int], profile: str,
            languages: list[str] | None, reuse: str) -> None:
    """Reproduce the paper's tables: every exp × seed of a track prepared, pretrained and
    evaluated (and in the real track transferred and correlated), then analysed."""
    outcomes = reproduction.main(exps, seeds, profile, str(ROOT), reuse, track, languages)
    failed = [o for o in outcomes if o.status in ("failed", "skipped")]
    if failed:
        click.echo(f"sweep: {len(failed)} step(s) did not complete: "
                   + "; ".join(f"{o.step} ({o.status})" for o in failed), err=True)
        sys.exit(1)


if __name__ == "__main__":
    run_command(command)
