"""`pretrain`: MLM pretraining of one exp × seed, tracked in MLflow, resumable."""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from pathlib import Path

import click
import mlflow
import torch
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from entrypoints import knn_space
from entrypoints import prepare as prepare_entry
from entrypoints.common import note_launcher, run_command, start_run
from entrypoints.evaluate import CheckpointEvaluator, summary
from minimult_ml import experiments, tracking
from minimult_ml.errors import InputError
from minimult_ml.experiments import TrainConfig
from minimult_ml.prepare import load
from minimult_ml.training import STATE_FILE, train

EVAL_DEV_SENTENCES = 10_000


def resolve_config(exp: str, eval_every: int = 0, **overrides: object) -> TrainConfig:
    """The config this entry point trains for its options (None = the exp's default)."""
    if eval_every < 0:
        raise InputError(f"eval_every must be ≥ 0, got {eval_every}")
    if eval_every and not overrides.get("checkpoint_every"):
        overrides["checkpoint_every"] = eval_every  # evaluation reads checkpoints: write them
    return experiments.resolve(exp, **overrides)


def run_params(config: TrainConfig, data_run_id: str, knn_run_id: str) -> dict[str, object]:
    knn = {"knn_run_id": knn_run_id} if knn_run_id else {}
    return dataclasses.asdict(config) | {"data_run_id": data_run_id} | knn


def unfinished_run(params: dict[str, object]) -> Run | None:
    """The newest killed, failed or still-"running" pretrain run with these params that has a
    resume state to continue from."""
    for run in tracking.find_runs("pretrain", params, tracking.experiment_name(),
                                  finished=False):
        if any(f.path == STATE_FILE for f in MlflowClient().list_artifacts(run.info.run_id)):
            return run
    return None


def fetch_resume_state(run_id: str, out: Path) -> None:
    """Download the resume state and the checkpoint it names into `out`."""
    state_file = tracking.download(run_id, STATE_FILE)
    step = torch.load(state_file, weights_only=False)["step"]
    (out / "checkpoints").mkdir(parents=True)
    state_file.replace(out / STATE_FILE)
    tracking.download(run_id, f"checkpoints/step-{step}").rename(
        out / "checkpoints" / f"step-{step}")


def pretrain(config: TrainConfig, data_run_id: str | None, resume: bool,
             own_launcher: bool = False, eval_every: int = 0, knn_run_id: str = "") -> str:
    """Train `config` on the prepared data, logging to a new run (or the one it resumes).

    With `eval_every`, checkpoints at multiples of it and the final one are evaluated as they
    are written, so the curves grow in the UI while training runs.
    """
    data_run_id = prepare_entry.data_run(data_run_id)
    data = load(tracking.download(data_run_id, ""))
    if config.p_knn > 0:  # knn-replace: the neighbour table of this data, built once
        knn_run_id = knn_space.knn_run(knn_run_id, data_run_id, config.knn_k)
    params = run_params(config, data_run_id, knn_run_id)
    previous = unfinished_run(params) if resume else None
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    evaluated: set[int] = set()

    def on_checkpoint(step: int, folder: Path) -> None:
        mlflow.log_artifacts(str(folder), f"checkpoints/step-{step}")
        if step != 0:  # the state of `untrained` is its initialisation: nothing to resume
            mlflow.log_artifact(str(out / STATE_FILE))
        if eval_every and step % eval_every == 0:
            evaluate_checkpoint(step, folder)

    def evaluate_checkpoint(step: int, folder: Path) -> None:
        evaluator = CheckpointEvaluator(run.info.run_id, [0, 8], EVAL_DEV_SENTENCES, data)
        click.echo(summary(step, evaluator(step, folder, figures_too=True)))
        evaluated.add(step)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        if previous is not None:
            fetch_resume_state(previous.info.run_id, out)
            run = mlflow.start_run(run_id=previous.info.run_id)
            click.echo(f"pretrain: resuming run {previous.info.run_id}")
            if own_launcher:
                note_launcher(f"Resumed the unfinished pretrain run {previous.info.run_id}.",
                              previous.info.run_id)
        else:
            tags = {"step": "pretrain", "exp": config.exp, "paper_id": config.paper_id,
                    "seed": str(config.seed), "data_run_id": data_run_id}
            if knn_run_id:
                tags["knn_run_id"] = knn_run_id
            run = start_run(config.run_name, tags, own_launcher,
                            params | data_fingerprints(data_run_id) | tracking.provenance()
                            | {"device": device.type})
        with run:
            knn_table = knn_space.load_table(knn_run_id) if knn_run_id else None
            result = train(config, data.train, data.tokenizer, data.languages, out,
                           device=device, knn_table=knn_table, log=mlflow.log_metrics,
                           on_checkpoint=on_checkpoint, resume=previous is not None,
                           progress=sys.stderr.isatty())
            final = out / "checkpoints" / f"step-{result.step}"
            mlflow.log_artifacts(str(final), "model")
            if eval_every and result.step not in evaluated:
                evaluate_checkpoint(result.step, final)
            if result.interrupted:
                mlflow.end_run("KILLED")
                raise click.Abort()
    click.echo(f"pretrain: finished run {run.info.run_id} ({config.run_name}, "
               f"{result.step} steps, final loss {result.final_loss:.4f})")
    return run.info.run_id


def data_fingerprints(data_run_id: str) -> dict[str, str]:
    params = MlflowClient().get_run(data_run_id).data.params
    return {f"data_{k}": v for k, v in params.items() if k.endswith("_sha256")}


class OptionalInt(click.ParamType):
    """An int, or "" for the exp's default (MLproject parameters cannot be left out)."""

    name = "integer"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> int | None:
        if value is None or value == "":
            return None
        try:
            return int(value)
        except ValueError:
            self.fail(f"{value!r} is not an integer", param, ctx)


OPTIONAL_INT = OptionalInt()


def print_registry() -> None:
    click.echo(f"{'ID':>4}  {'exp':45s} size   lr      epochs  masking (mask, keep, random, knn)")
    for paper_id in experiments.PAPER_IDS:
        c = experiments.resolve(paper_id)
        click.echo(f"{c.paper_id:>4}  {c.exp:45s} {c.size:6s} {c.lr:<7g} {c.epochs:<7d} "
                   f"({c.p_mask:g}, {c.p_keep:g}, {c.p_random:g}, {c.p_knn:g})")


@click.command("pretrain")
@click.option("--exp", default="original", show_default=True,
              help="Paper ID or modification names joined by ';' or '+'.")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--epochs", type=OPTIONAL_INT, help="Default: the exp's (100; 200 for no-parallel).")
@click.option("--max-steps", type=int, help="Stop after this many optimizer steps.")
@click.option("--checkpoint-every", type=int, help="Steps between checkpoints (0 = end only).")
@click.option("--batch-size", type=int, help="Effective batch size (default 256).")
@click.option("--micro-batch-size", type=int, help="Gradient accumulation: rows per pass.")
@click.option("--lr", type=float, help="Default: the exp's (2e-3; 1e-4 for overparam).")
@click.option("--data-run-id", default="", help="The prepare run to train on (default: newest).")
@click.option("--knn-run-id", default="",
              help="knn-replace: the knn-space run to use (default: built or reused).")
@click.option("--compile", "compile_", type=click.Choice(["auto", "true", "false"]),
              default="auto", show_default=True, help="torch.compile (auto = on CUDA only).")
@click.option("--resume", type=bool, default=False, show_default=True,
              help="Continue the newest unfinished run with the same parameters.")
@click.option("--eval-every", type=int, default=0, show_default=True,
              help="Evaluate checkpoints at multiples of N steps, and the last (0 = none); "
                   "checkpoint_every defaults to N.")
@click.option("--list", "list_", is_flag=True, help="Print the experiment registry and exit.")
def command(exp: str, seed: int, epochs: int | None, max_steps: int | None,
            checkpoint_every: int | None, batch_size: int | None, micro_batch_size: int | None,
            lr: float | None, data_run_id: str, knn_run_id: str, compile_: str, resume: bool,
            eval_every: int, list_: bool) -> None:
    """Pretrain BERT with MLM on English + Fake-English under an exp's modifications."""
    if list_:
        print_registry()
        return
    config = resolve_config(exp, eval_every, seed=seed, epochs=epochs, max_steps=max_steps,
                            checkpoint_every=checkpoint_every, batch_size=batch_size,
                            micro_batch_size=micro_batch_size, lr=lr, compile=compile_)
    pretrain(config, data_run_id or None, resume, own_launcher=True, eval_every=eval_every,
             knn_run_id=knn_run_id)


if __name__ == "__main__":
    run_command(command)
