"""`pretrain`: MLM pretraining of one exp × seed, tracked in MLflow, resumable; several processes
with `torchrun --nproc-per-node N -m entrypoints.pretrain …` (DDP, the same effective batch)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import click
import mlflow
import torch
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from entrypoints import knn_space
from entrypoints import prepare as prepare_entry
from entrypoints.common import OPTIONAL_FLOAT, OPTIONAL_INT, note_launcher, run_command, start_run
from entrypoints.evaluate import CheckpointEvaluator, summary
from minimult_ml import distributed, experiments, store, tracking
from minimult_ml.errors import InputError
from minimult_ml.experiments import TrainConfig
from minimult_ml.prepare import load
from minimult_ml.training import CONFIG_FILE, STATE_FILE, train

EVAL_DEV_SENTENCES = 10_000
RESUME_TAG = "resume_step"  # set once a checkpoint and its resume state are both logged


def training_overrides(eval_every: int = 0, **options: object) -> dict[str, object]:
    """The exp overrides of this entry point's options (None = the exp's default)."""
    if eval_every < 0:
        raise InputError(f"eval_every must be ≥ 0, got {eval_every}")
    if eval_every and not options.get("checkpoint_every"):
        options["checkpoint_every"] = eval_every  # evaluation reads checkpoints: write them
    return options


def resolve_config(exp: str, eval_every: int = 0, track: str | None = None,
                   **options: object) -> TrainConfig:
    """The config this entry point trains for its options, in `track` (default: the exp's)."""
    return experiments.resolve(exp, track, **training_overrides(eval_every, **options))


def run_params(config: TrainConfig, data_run_id: str, knn_run_id: str) -> dict[str, object]:
    knn = {"knn_run_id": knn_run_id} if knn_run_id else {}
    return dataclasses.asdict(config) | {"data_run_id": data_run_id} | knn


def unfinished_run(params: dict[str, object], experiment: str) -> Run | None:
    """The newest killed, failed or still-"running" pretrain run with these params that has a
    resume state to continue from (on the server, or kept on this machine). Runs whose process
    died are marked KILLED; one whose process still trains cannot be resumed twice."""
    runs = tracking.find_runs("pretrain", params, experiment, finished=False)
    alive = {run.info.run_id for run in store.end_orphans(runs)}
    for run in runs:
        if RESUME_TAG in run.data.tags or local_state_step(run.info.run_id) is not None:
            if run.info.run_id in alive:
                tags = run.data.tags
                raise InputError(f"run {run.info.run_id} with these parameters is still training "
                                 f"(process {tags.get(store.PID_TAG, '?').split(':')[0]} on "
                                 f"{tags.get(store.HOST_TAG, 'another host')}); wait for it, or "
                                 "stop it and resume")
            return run
    return None


def state_folder(run_id: str) -> Path:
    """Where rank 0 keeps a run's checkpoints and resume state while it trains. Kept when the
    run stops unfinished (Ctrl-C, SIGTERM, its tracking server gone), so `resume` continues from
    it even when the server never got the last checkpoint; removed once the run finishes.
    MINIMULT_STATE_DIR moves them (default: ~/.cache/minimult/runs)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(os.environ.get("MINIMULT_STATE_DIR") or cache / "minimult" / "runs") / run_id


def local_state_step(run_id: str) -> int | None:
    """The step of the resume state kept on this machine, when it and its checkpoint are whole
    (a checkpoint folder is complete once its training config is written, last)."""
    state = state_folder(run_id) / STATE_FILE
    if not state.is_file():
        return None
    step = torch.load(state, weights_only=False, map_location="cpu")["step"]
    complete = (state.parent / "checkpoints" / f"step-{step}" / CONFIG_FILE).is_file()
    return step if complete else None


def sync_resume_state(run: Run) -> None:
    """Before resuming: a resume state kept here that the server lacks (it went away before it
    got it) is logged, so every process and machine resumes from the same step; one older than
    the server's is dropped."""
    run_id, local = run.info.run_id, local_state_step(run.info.run_id)
    logged = int(run.data.tags.get(RESUME_TAG, -1))
    if local is None or local < logged:
        shutil.rmtree(state_folder(run_id), ignore_errors=True)
    elif local > logged:
        client = MlflowClient()
        folder = state_folder(run_id)
        client.log_artifacts(run_id, str(folder / "checkpoints" / f"step-{local}"),
                             f"checkpoints/step-{local}")
        client.log_artifact(run_id, str(folder / STATE_FILE))
        client.set_tag(run_id, RESUME_TAG, str(local))


def fetch_resume_state(run_id: str, out: Path) -> None:
    """Download the resume state and the checkpoint it names into `out`."""
    state_file = tracking.download(run_id, STATE_FILE)
    step = torch.load(state_file, weights_only=False)["step"]
    (out / "checkpoints").mkdir(parents=True)
    state_file.replace(out / STATE_FILE)
    tracking.download(run_id, f"checkpoints/step-{step}").rename(
        out / "checkpoints" / f"step-{step}")


@dataclasses.dataclass(frozen=True)
class Plan:
    """What rank 0 looked up on the tracking server, shared with every process."""

    config: TrainConfig
    data_run_id: str
    knn_run_id: str
    run_id: str  # the run to log into: new, or the unfinished one to resume
    resumed: bool
    logged_up_to: int = 0  # the killed attempt's last logged step: replayed steps stay unlogged


def plan(exp: str, overrides: dict[str, object], data_run_id: str | None, resume: bool,
         own_launcher: bool, knn_run_id: str, eval_every: int, device: torch.device) -> Plan:
    """Rank 0: find or build the data (and knn space), resolve the exp for the data's track, and
    start the run (or find the one to resume), leaving it active in this process."""
    if data_run_id:
        tracking.get_run(data_run_id, "prepare")
        track = prepare_entry.track_of(data_run_id)
    else:
        track = experiments.track_of(exp) or "lab"
    config = experiments.resolve(exp, track, **overrides)
    if eval_every and track == "real":
        raise InputError("eval_every: evaluate measures English–Fake-English multilinguality "
                         "in the lab; real-track runs are evaluated by the xnli entry point")
    data_run_id = prepare_entry.data_run(data_run_id, track)
    # A bad invert= fails before any run exists.
    experiments.inverted_languages(config, prepare_entry.languages_of(data_run_id))
    if config.p_knn > 0:  # knn-replace: the neighbour table of this data, built once
        knn_run_id = knn_space.knn_run(knn_run_id, data_run_id, config.knn_k)
    params = run_params(config, data_run_id, knn_run_id)
    experiment = prepare_entry.experiment_of(track)
    if resume:
        previous = unfinished_run(params, experiment)
    else:  # a new run; the killed ones with these parameters are marked so
        store.end_orphans(tracking.find_runs("pretrain", params, experiment, finished=False))
        previous = None
    if previous is not None:
        click.echo(f"pretrain: resuming run {previous.info.run_id}")
        if own_launcher:
            note_launcher(f"Resumed the unfinished pretrain run {previous.info.run_id}.",
                          previous.info.run_id)
        sync_resume_state(previous)
        mlflow.start_run(run_id=previous.info.run_id)  # RUNNING again
        mlflow.set_tags(store.owner_tags())  # this process trains it now
        history = MlflowClient().get_metric_history(previous.info.run_id, "loss/train")
        return Plan(config, data_run_id, knn_run_id, previous.info.run_id, True,
                    max((m.step for m in history), default=0))
    tags = {"step": "pretrain", "exp": config.exp, "paper_id": config.paper_id,
            "seed": str(config.seed), "data_run_id": data_run_id, "track": track}
    if knn_run_id:
        tags["knn_run_id"] = knn_run_id
    run = start_run(config.run_name, tags, own_launcher,
                    params | data_fingerprints(data_run_id) | tracking.provenance()
                    | {"device": device.type}, experiment)
    return Plan(config, data_run_id, knn_run_id, run.info.run_id, False)


def pretrain(exp: str, overrides: dict[str, object], data_run_id: str | None, resume: bool,
             own_launcher: bool = False, eval_every: int = 0, knn_run_id: str = "") -> str:
    """Train exp (with `overrides` of its defaults) on the prepared data, logging to a new run or
    the one it resumes; under torchrun, in every process.

    With `eval_every`, checkpoints at multiples of it and the final one are evaluated as they
    are written, so the curves grow in the UI while training runs.
    """
    process = distributed.start()
    try:
        the_plan = plan(exp, overrides, data_run_id, resume, own_launcher, knn_run_id,
                        eval_every, process.device) if process.main else None
        the_plan = distributed.share(the_plan, process)
        try:
            return _train(the_plan, process, eval_every)
        except BaseException as e:
            if process.main:
                _end_unfinished(e, the_plan)
            raise
    finally:
        distributed.stop(process)


def _end_unfinished(error: BaseException, plan: Plan) -> None:
    """Ctrl-C or SIGTERM left a last checkpoint: the run is KILLED, resumable. A tracking server
    that went away cannot be told anything: one line says how to continue once it is back.
    Anything else: FAILED."""
    if reason := store.server_gone():
        with contextlib.suppress(MlflowException):  # fails at once now; clears the active run
            mlflow.end_run("FAILED")
        raise InputError(
            f"tracking server {mlflow.get_tracking_uri()} became unreachable ({reason}) while "
            f"run {plan.run_id} was training; its training state is kept in "
            f"{state_folder(plan.run_id)}: once the server is back, run the same command with "
            "resume=true") from None
    interrupted = isinstance(error, click.Abort | KeyboardInterrupt)
    mlflow.end_run("KILLED" if interrupted else "FAILED")


def _train(plan: Plan, process: distributed.Process, eval_every: int) -> str:
    """Every rank trains; rank 0 logs into the active run and ends it FINISHED."""
    config = plan.config
    data = load(tracking.download(plan.data_run_id, ""))
    evaluated: set[int] = set()
    client = MlflowClient()

    def on_checkpoint(step: int, folder: Path) -> None:  # rank 0 only
        client.log_artifacts(plan.run_id, str(folder), f"checkpoints/step-{step}")
        if step != 0:  # the state of `untrained` is its initialisation: nothing to resume
            client.log_artifact(plan.run_id, str(out / STATE_FILE))
            # The commit point: a checkpoint and the state naming it are both complete.
            client.set_tag(plan.run_id, RESUME_TAG, str(step))
        if eval_every and step % eval_every == 0:
            evaluate_checkpoint(step, folder)

    def log(metrics: dict[str, float], step: int) -> None:  # rank 0 only
        # A resumed run replays the steps after its last resume state; the killed attempt
        # already logged those (the same numbers: training is deterministic).
        if step > plan.logged_up_to:
            mlflow.log_metrics(metrics, step=step)

    def evaluate_checkpoint(step: int, folder: Path) -> None:
        evaluator = CheckpointEvaluator(plan.run_id, [0, 8], EVAL_DEV_SENTENCES, data)
        click.echo(summary(step, evaluator(step, folder, figures_too=True)))
        evaluated.add(step)

    with tempfile.TemporaryDirectory() as tmp:
        out = state_folder(plan.run_id) if process.main else Path(tmp)
        if plan.resumed and not (out / STATE_FILE).is_file():
            fetch_resume_state(plan.run_id, out)
        knn_table = knn_space.load_table(plan.knn_run_id) if plan.knn_run_id else None
        result = train(config, data.train, data.tokenizers, out, device=process.device,
                       knn_table=knn_table, log=log, on_checkpoint=on_checkpoint,
                       resume=plan.resumed, process=process)
        if process.main:
            final = out / "checkpoints" / f"step-{result.step}"
            client.log_artifacts(plan.run_id, str(final), "model")
            if eval_every and result.step not in evaluated:
                evaluate_checkpoint(result.step, final)
    if result.interrupted:
        raise click.Abort(f"pretrain: stopped at step {result.step}; run {plan.run_id} is KILLED "
                          "with its last checkpoint: continue it with resume=true")
    if process.main:
        mlflow.end_run("FINISHED")
        shutil.rmtree(state_folder(plan.run_id), ignore_errors=True)
        click.echo(f"pretrain: finished run {plan.run_id} ({config.run_name}, "
                   f"{result.step} steps, final loss {result.final_loss:.4f})")
    return plan.run_id


def data_fingerprints(data_run_id: str) -> dict[str, str]:
    params = MlflowClient().get_run(data_run_id).data.params
    return {f"data_{k}": v for k, v in params.items() if k.endswith("_sha256")}


def print_registry() -> None:
    click.echo(f"{'ID':>7}  {'exp':45s} size   lr      epochs  masking (mask, keep, random, knn)")
    for exp in [*experiments.PAPER_IDS, *experiments.REAL_IDS, *experiments.EXTENSIONS]:
        c = experiments.resolve(exp)
        click.echo(f"{c.paper_id:>7}  {c.exp:45s} {c.size:6s} {c.lr:<7g} {c.epochs:<7d} "
                   f"({c.p_mask:g}, {c.p_keep:g}, {c.p_random:g}, {c.p_knn:g})")


@click.command("pretrain")
@click.option("--exp", default="original", show_default=True,
              help="Paper ID or modification names joined by ';' or '+'.")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--epochs", type=OPTIONAL_INT,
              help="Default: the exp's (100; 200 for no-parallel; 2 in the real track).")
@click.option("--max-steps", type=int, help="Stop after this many optimizer steps.")
@click.option("--checkpoint-every", type=int, help="Steps between checkpoints (0 = end only).")
@click.option("--batch-size", type=int, help="Effective batch size (default 256).")
@click.option("--micro-batch-size", type=int, help="Gradient accumulation: rows per pass.")
@click.option("--lr", type=float, help="Default: the exp's (2e-3; 1e-4 for BERT-base).")
@click.option("--size", default="",
              help="small or base (default: the exp's; small in the lab, base in the real track).")
@click.option("--dropout", type=OPTIONAL_FLOAT, help="Hidden and attention dropout (default 0.1).")
@click.option("--invert", default="", help="inv-order: the language reversed (default: the "
                                            "second, Fake-English or German).")
@click.option("--data-run-id", default="", help="The prepare run to train on (default: newest "
                                                 "default one of the exp's track).")
@click.option("--knn-run-id", default="",
              help="knn-replace: the knn-space run to use (default: built or reused).")
@click.option("--compile", "compile_", type=click.Choice(["auto", "true", "false"]),
              default="auto", show_default=True, help="torch.compile (auto = on CUDA only).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto",
              show_default=True, help="bf16 autocast (auto = on CUDA only: most CPUs lack "
                                      "native bf16 and run it slower than fp32).")
@click.option("--resume", type=bool, default=False, show_default=True,
              help="Continue the newest unfinished run with the same parameters.")
@click.option("--eval-every", type=int, default=0, show_default=True,
              help="Evaluate checkpoints at multiples of N steps, and the last (0 = none); "
                   "checkpoint_every defaults to N. Lab runs only.")
@click.option("--list", "list_", is_flag=True, help="Print the experiment registry and exit.")
def command(exp: str, seed: int, epochs: int | None, max_steps: int | None,
            checkpoint_every: int | None, batch_size: int | None, micro_batch_size: int | None,
            lr: float | None, size: str, dropout: float | None, invert: str,
            data_run_id: str, knn_run_id: str, compile_: str, precision: str, resume: bool,
            eval_every: int, list_: bool) -> None:
    """Pretrain BERT with MLM on a prepared corpus under an exp's modifications."""
    if list_:
        print_registry()
        return
    overrides = training_overrides(
        eval_every, seed=seed, epochs=epochs, max_steps=max_steps,
        checkpoint_every=checkpoint_every, batch_size=batch_size,
        micro_batch_size=micro_batch_size or None, lr=lr, size=size or None, dropout=dropout,
        invert=invert or None, compile=compile_, precision=precision)
    pretrain(exp, overrides, data_run_id or None, resume, own_launcher=True,
             eval_every=eval_every, knn_run_id=knn_run_id)


if __name__ == "__main__":
    run_command(command)
