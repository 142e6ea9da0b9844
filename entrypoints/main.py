"""`main`: the reproduction sweep — prepare, pretrain (evaluated) for every exp × seed, then the
analysis; each step its own `mlflow run`, finished ones reused, failed ones retried once."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import click
import mlflow

from analysis import reproduction
from entrypoints.common import run_command, start_run
from minimult_ml import experiments, tracking
from minimult_ml.errors import InputError, check_seed

ROOT = Path(__file__).resolve().parents[1]


def parse_list(spec: str, what: str) -> list[str]:
    items = [s.strip() for s in spec.split(",") if s.strip()]
    if not items:
        raise InputError(f"{what} {spec!r} is empty: give a comma-separated list")
    return list(dict.fromkeys(items))


def parse_seeds(spec: str) -> list[int]:
    try:
        seeds = [int(s) for s in parse_list(spec, "seeds")]
    except ValueError:
        raise InputError(f"seeds {spec!r}: give integers like 0,42,43") from None
    for seed in seeds:
        check_seed(seed, f"seeds {spec!r}: seed {seed}")
    return seeds


@click.command("main")
@click.option("--exps", default=",".join(experiments.LAB_IDS), show_default=True,
              help="Comma-separated exps: paper IDs or ';'/'+'-joined modification names.")
@click.option("--seeds", default=",".join(map(str, reproduction.SEEDS)), show_default=True)
@click.option("--profile", type=click.Choice(sorted(reproduction.PROFILES)), default="paper",
              show_default=True, help="paper: the paper's settings; quick: a CPU smoke check.")
def command(exps: str, seeds: str, profile: str) -> None:
    """Reproduce Tables 1–2: every exp × seed prepared, pretrained and evaluated, then analysed."""
    exp_list, seed_list = parse_list(exps, "exps"), parse_seeds(seeds)
    real = [exp for exp in exp_list if experiments.track_of(exp)]
    if real:
        raise InputError(f"exps {', '.join(real)}: main reproduces the lab's Tables 1–2; train "
                         "real-track exps with the pretrain entry point and test them with xnli")
    experiment = tracking.experiment_name()
    launch = reproduction.mlflow_launcher(str(ROOT), experiment)
    params = {"exps": exps, "seeds": seeds, "profile": profile}
    # The sweep's own run: each step's run is nested under it in the UI.
    with tracking.server_errors():
        run = start_run(f"sweep-{profile}", {"step": "sweep"}, True, params, experiment)
    with run:
        outcomes = reproduction.sweep(exp_list, seed_list, reproduction.PROFILES[profile],
                                      experiment, launch)
        click.echo("sweep: " + ", ".join(f"{sum(o.status == s for o in outcomes)} {s}"
                                          for s in dict.fromkeys(o.status for o in outcomes)))
        for outcome in outcomes:
            click.echo(outcome.line())
        outcomes.append(reproduction.analysis_step(exp_list, experiment, launch))
        failed = [o for o in outcomes if o.status in ("failed", "skipped")]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "sweep.json"
            path.write_text(json.dumps([o.__dict__ for o in outcomes], indent=2))
            mlflow.log_artifact(str(path))
        mlflow.log_metric("failed_steps", len(failed))
    if failed:
        click.echo(f"sweep: {len(failed)} step(s) did not complete: "
                   + "; ".join(f"{o.step} ({o.status})" for o in failed), err=True)
        sys.exit(1)


if __name__ == "__main__":
    run_command(command)
