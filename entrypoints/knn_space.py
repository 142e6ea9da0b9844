"""`knn-space`: the static cross-lingual space of knn-replace for one prepared dataset."""

from __future__ import annotations

import click

from entrypoints.common import INT_OR_DEFAULT, reuse_option, run_command


@click.command("knn-space")
@click.option("--data-run-id", default="", show_default="the newest default one of --track",
              help="The prepare run.")
@click.option("--track", type=click.Choice(["lab", "real"]), default="lab", show_default=True,
              help="Without --data-run-id: whose default data (and defaults) to use.")
@click.option("--k", type=INT_OR_DEFAULT, show_default="1 lab, 5 real",
              help="Neighbours per token.")
@click.option("--dim", type=int, default=300, show_default=True, help="fastText dimension.")
@click.option("--epoch", type=int, default=20, show_default=True, help="fastText epochs.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=INT_OR_DEFAULT, show_default="1 lab, 8 real",
              help="fastText threads per language (1 is bit-for-bit reproducible).")
@reuse_option
def command(data_run_id: str, track: str, k: int | None, dim: int, epoch: int, seed: int,
            threads: int | None, reuse: str) -> None:
    """Build (or reuse) the knn-replace neighbour table of a prepared dataset."""
    from minimult_ml.steps import knn_space
    from minimult_ml.steps.prepare import data_run, data_track

    if data_run_id:
        track = data_track(data_run(data_run_id))  # checked once, here
    config = knn_space.default_config(track, k, dim=dim, epoch=epoch, seed=seed,
                                      threads=threads)
    config.validate()  # before a default prepare may run: a bad option writes nothing
    knn_space.get_or_run(data_run_id or data_run(None, track, reuse), config, reuse)


if __name__ == "__main__":
    run_command(command)
