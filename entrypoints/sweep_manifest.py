"""`sweep-manifest`: the Kubernetes Jobs of a sweep over exps × seeds (no tracking)."""

from __future__ import annotations

from pathlib import Path

import click

from entrypoints.common import run_command
from minimult_ml.errors import InputError
from minimult_ml.files import atomic_write
from minimult_ml.kubernetes import PRETRAIN_PARAMS, Sweep, manifests, to_yaml


def parse_seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise InputError(f"seeds {text!r}: give integers like 0,42,43") from None


def parse_params(pairs: tuple[str, ...]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"--param {pair!r}: write KEY=VALUE, e.g. epochs=50")
        params[key] = value
    return params


def write(text: str, output: Path) -> None:
    """All of `text` at `output`, or nothing (written beside it, then renamed)."""
    if not output.parent.is_dir():
        raise InputError(f"output {output}: folder {output.parent} does not exist; create it")
    with atomic_write(output) as f:
        f.write(text)


@click.command("sweep-manifest")
@click.option("--exps", required=True,
              help="Comma-separated exps (paper IDs or names), e.g. 0,8,30.")
@click.option("--seeds", required=True, help="Comma-separated seeds, e.g. 0,42,43,100,101.")
@click.option("--image", required=True, help="The project's image with a tag or digest.")
@click.option("--tracking-uri", default="",
              help="The server's URL, without credentials (default: MLFLOW_TRACKING_URI from "
                   "the Secret).")
@click.option("--secret", default="minimult-tracking", show_default=True,
              help="Secret holding MLFLOW_TRACKING_URI, MLFLOW_TRACKING_USERNAME and "
                   "MLFLOW_TRACKING_PASSWORD.")
@click.option("--name", default="minimult-sweep", show_default=True, help="The Job's name.")
@click.option("--gpus", type=int, default=1, show_default=True, help="GPUs per pod.")
@click.option("--cpu", default="4", show_default=True, help="CPUs each pod requests.")
@click.option("--memory", default="16Gi", show_default=True, help="Memory each pod requests.")
@click.option("--eval-every", type=int, default=1000, show_default=True,
              help="Evaluate checkpoints at multiples of N steps, and the last.")
@click.option("--parallelism", type=int, default=0, help="Pods running at once (0 = all).")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help=f"Another pretrain parameter for every pod: {', '.join(PRETRAIN_PARAMS)}.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the manifest here instead of printing it.")
def command(exps: str, seeds: str, image: str, tracking_uri: str, secret: str, name: str,
            gpus: int, cpu: str, memory: str, eval_every: int, parallelism: int,
            params: tuple[str, ...], output: Path | None) -> None:
    """Print the Kubernetes Jobs of a sweep: one GPU pod per exp × seed (an Indexed Job),
    created suspended behind a preparation Job; see the README."""
    sweep = Sweep.build([e for e in exps.split(",") if e.strip()], parse_seeds(seeds), image,
                        parse_params(params), name=name, secret=secret,
                        tracking_uri=tracking_uri, gpus=gpus, cpu=cpu, memory=memory,
                        eval_every=eval_every, parallelism=parallelism)
    docs = manifests(sweep)
    text = to_yaml(docs)
    if output is None:
        click.echo(text, nl=False)
        return
    write(text, output)
    jobs = " and ".join(f"{d['metadata']['name']}" for d in docs)
    click.echo(f"wrote {output}: Jobs {jobs} ({len(sweep.tasks)} pods)")


if __name__ == "__main__":
    run_command(command)
