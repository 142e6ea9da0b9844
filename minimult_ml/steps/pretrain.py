"""The pretrain step: an exp, its overrides and the data → its run (MLM pretraining of one
exp × seed, resumable; under torchrun every process trains and rank 0 logs)."""

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

from minimult_ml import distributed, experiments, store, tracking
from minimult_ml.cache import cache_dir
from minimult_ml.errors import InputError, Interrupted
from minimult_ml.experiments import TrainConfig
from minimult_ml.steps import runs
from minimult_ml.steps.evaluate import DEV_SENTENCES, LAYERS, CheckpointEvaluator, summary
from minimult_ml.steps.knn_space import default_config, find, knn_run, load_table, needs_space
from minimult_ml.steps.prepare import (
    data_fingerprints,
    data_run,
    data_track,
    has_verses,
    languages_of,
    load_data,
)
from minimult_ml.training import CONFIG_FILE, STATE_FILE, train

STEP = "pretrain"
RESUME_TAG = "resume_step"  # set once a checkpoint and its resume state are both logged


def training_overrides(eval_every: int = 0, **options: object) -> dict[str, object]:
    """The exp overrides of the step's options (None = the exp's default)."""
    if eval_every < 0:
        raise InputError(f"eval_every must be ≥ 0, got {eval_every}")
    if eval_every and not options.get("checkpoint_every"):
        options["checkpoint_every"] = eval_every  # evaluation reads checkpoints: write them
    return options


def resolve_config(exp: str, eval_every: int = 0, track: str | None = None,
                   **options: object) -> TrainConfig:
    """The config the step trains for these options, in `track` (default: the exp's)."""
    return experiments.resolve(exp, track, **training_overrides(eval_every, **options))


def run_params(config: TrainConfig, data_run_id: str, knn_run_id: str) -> dict[str, object]:
    """The params a pretrain run is found by: its config, data and knn space."""
    knn = {"knn_run_id": knn_run_id} if knn_run_id else {}
    return config.params() | {"data_run_id": data_run_id} | knn


def unfinished_run(params: dict[str, object], experiment: str, reuse: str) -> Run | None:
    """The newest killed, failed or still-"running" pretrain run with these params that has a
    resume state to continue from (on the server, or kept on this machine), made by the same
    code unless reuse=any. Runs whose process died are marked KILLED first; one whose process
    still trains is not resumed twice."""
    found = tracking.find_runs(STEP, params, experiment, finished=False)
    alive = {r.info.run_id: r for r in store.end_orphans(found)}
    resumable = [r for r in found
                 if RESUME_TAG in r.data.tags or local_state_step(r.info.run_id) is not None]
    chosen = runs.choose(STEP, resumable, "any" if reuse == "any" else "same-code")
    if chosen is not None and chosen.info.run_id in alive:
        tags = chosen.data.tags
        raise InputError(f"run {chosen.info.run_id} with these parameters is still training "
                         f"(process {tags.get(store.PID_TAG, '?').split(':')[0]} on "
                         f"{tags.get(store.HOST_TAG, 'another host')}); wait for it, or stop it "
                         "and resume")
    return chosen


def state_folder(run_id: str) -> Path:
    """Where rank 0 keeps a run's checkpoints and resume state while it trains. Kept when the
    run stops unfinished (Ctrl-C, SIGTERM, its tracking server gone), so `resume` continues from
    it even when the server never got the last checkpoint; removed once the run finishes.
    MINIMULT_STATE_DIR moves them (default: ~/.cache/minimult/runs)."""
    return Path(os.environ.get("MINIMULT_STATE_DIR") or cache_dir("runs")) / run_id


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
        folder, client = state_folder(run_id), MlflowClient()
        with tracking.server_errors():
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
class TrainingRun:
    """The run rank 0 found or started, shared with every process."""

    config: TrainConfig
    data_run_id: str
    knn_run_id: str
    run_id: str  # the run to log into: new, or the unfinished one to resume
    resumed: bool
    logged_up_to: int = 0  # the killed attempt's last logged step: replayed steps stay unlogged


def start_or_resume(exp: str, overrides: dict[str, object], data_run_id: str | None,
                    resume: bool, knn_run_id: str, eval_every: int, reuse: str,
                    device: torch.device) -> TrainingRun:
    """Rank 0: find or build the data (and knn space), resolve the exp for the data's track, and
    start the run (or find the one to resume), leaving it active in this process."""
    runs.check_reuse(reuse)
    if data_run_id:
        tracking.get_run(data_run_id, "prepare")
        track = data_track(data_run_id)
    else:
        track = experiments.named_track(exp) or "lab"
    config = experiments.resolve(exp, track, **overrides)
    data_run_id = data_run(data_run_id, track, reuse)
    if eval_every and track == "real" and not has_verses(data_run_id):
        raise InputError(f"eval_every: the real track is evaluated on parallel dev verses, and "
                         f"data {data_run_id} are not from the Bibles; prepare them with "
                         "source=bible or leave eval_every at 0")
    # A bad invert= fails before any run exists.
    experiments.inverted_languages(config, languages_of(data_run_id))
    if needs_space(config):  # knn-replace: the neighbour table of this data, built once
        knn_run_id = knn_run(knn_run_id, data_run_id, config.knn_k, reuse)
    elif knn_run_id:  # a sweep passes one space to all its exps: only knn-replace uses it
        click.echo(f"pretrain: exp {config.exp} does not use knn-replace; "
                   f"knn_run_id {knn_run_id} is ignored")
        knn_run_id = ""
    params = run_params(config, data_run_id, knn_run_id)
    experiment = runs.experiment_of(track)
    if resume:
        previous = unfinished_run(params, experiment, reuse)
    else:  # a new run; killed ones with these parameters are marked so
        store.end_orphans(tracking.find_runs(STEP, params, experiment, finished=False))
        previous = None
    if previous is not None:
        run_id = previous.info.run_id
        click.echo(f"pretrain: resuming run {run_id}")
        tracking.label_launcher(run_id, previous.info.run_name, STEP, "resumed")
        sync_resume_state(previous)
        with tracking.server_errors():
            mlflow.start_run(run_id=run_id)  # RUNNING again
            mlflow.set_tags(store.owner_tags())  # this process trains it now
            history = MlflowClient().get_metric_history(run_id, tracking.LOSS)
        return TrainingRun(config, data_run_id, knn_run_id, run_id, True,
                           max((m.step for m in history), default=0))
    tags = {"exp": config.exp, "paper_id": config.paper_id, "seed": str(config.seed),
            "data_run_id": data_run_id, "track": track}
    if knn_run_id:
        tags["knn_run_id"] = knn_run_id
    description = (f"Pretraining of exp {config.paper_id} ({config.exp}), seed {config.seed}: "
                   f"BERT-{config.size}, {config.epochs} epochs, lr {config.lr:g}, on prepare "
                   f"run {data_run_id}" + (f" with knn-space run {knn_run_id}" if knn_run_id
                                           else "") + ".")
    run = runs.start(STEP, config.run_name, tags,
                     params | data_fingerprints(data_run_id) | {"device": device.type},
                     experiment, description)
    return TrainingRun(config, data_run_id, knn_run_id, run.info.run_id, False)


def pretrain(exp: str, overrides: dict[str, object], data_run_id: str | None = None,
             resume: bool = False, eval_every: int = 0, knn_run_id: str = "",
             reuse: str = "same-code") -> str:
    """Train exp (with `overrides` of its defaults) on the prepared data, logging to a new run or
    the one it resumes; under torchrun, in every process. Returns the run's id; raises
    Interrupted after Ctrl-C (the run is then KILLED and resumable).

    With `eval_every`, checkpoints at multiples of it and the final one are evaluated as they
    are written, so the curves grow in the UI while training runs.
    """
    process = distributed.start()
    try:
        found = start_or_resume(exp, overrides, data_run_id, resume, knn_run_id, eval_every,
                                reuse, process.device) if process.main else None
        found = distributed.share(found, process)
        try:
            return train_in_run(found, process, eval_every)
        except BaseException as e:
            if process.main:
                end_unfinished(e, found)
            raise
    finally:
        distributed.stop(process)


def end_unfinished(error: BaseException, run: TrainingRun) -> None:
    """Ctrl-C or SIGTERM left a last checkpoint: the run is KILLED, resumable. A tracking server
    that went away cannot be told anything: one line says how to continue once it is back.
    Anything else: FAILED."""
    if reason := store.server_gone():
        with contextlib.suppress(MlflowException):  # fails at once now; clears the active run
            mlflow.end_run("FAILED")
        raise InputError(
            f"tracking server {mlflow.get_tracking_uri()} became unreachable ({reason}) while "
            f"run {run.run_id} was training; its training state is kept in "
            f"{state_folder(run.run_id)}: once the server is back, run the same command with "
            "resume=true") from None
    mlflow.end_run("KILLED" if isinstance(error, Interrupted | KeyboardInterrupt) else "FAILED")


def train_in_run(run: TrainingRun, process: distributed.Process, eval_every: int) -> str:
    """Every rank trains; rank 0 logs into the active run and ends it FINISHED."""
    config = run.config
    data = load_data(run.data_run_id)
    evaluated: set[int] = set()
    client = MlflowClient()

    def on_checkpoint(step: int, folder: Path) -> None:  # rank 0 only
        with tracking.server_errors():
            client.log_artifacts(run.run_id, str(folder), f"checkpoints/step-{step}")
            if step != 0:  # the state of `untrained` is its initialisation: nothing to resume
                client.log_artifact(run.run_id, str(out / STATE_FILE))
                # The commit point: a checkpoint and the state naming it are both complete.
                client.set_tag(run.run_id, RESUME_TAG, str(step))
        if eval_every and step % eval_every == 0:
            evaluate_checkpoint(step, folder)

    def log(metrics: dict[str, float], step: int) -> None:  # rank 0 only
        # A resumed run replays the steps after its last resume state; the killed attempt
        # already logged those (the same numbers: training is deterministic).
        if step > run.logged_up_to:
            with tracking.server_errors():
                mlflow.log_metrics(metrics, step=step)

    def evaluate_checkpoint(step: int, folder: Path) -> None:
        evaluator = CheckpointEvaluator(run.run_id, list(LAYERS), DEV_SENTENCES, data)
        scores = evaluator(step, folder, figures_too=True)
        click.echo(summary(step, scores, evaluator.layers, evaluator.real))
        evaluated.add(step)

    with tempfile.TemporaryDirectory() as tmp:
        out = state_folder(run.run_id) if process.main else Path(tmp)
        if run.resumed and not (out / STATE_FILE).is_file():
            fetch_resume_state(run.run_id, out)
        knn_table = load_table(run.knn_run_id) if run.knn_run_id else None
        result = train(config, data.train, data.tokenizers, out, device=process.device,
                       knn_table=knn_table, log=log, on_checkpoint=on_checkpoint,
                       resume=run.resumed, process=process)
        # Stopped (Ctrl-C, SIGTERM): stop now. Its last checkpoint is logged; the model and a
        # full evaluation (minutes) belong to a finished run, and a pod has seconds to exit.
        if process.main and not result.interrupted:
            final = out / "checkpoints" / f"step-{result.step}"
            with tracking.server_errors():
                client.log_artifacts(run.run_id, str(final), "model")
            if eval_every and result.step not in evaluated:
                evaluate_checkpoint(result.step, final)
    if result.interrupted:
        raise Interrupted(f"pretrain: stopped at step {result.step}; run {run.run_id} is KILLED "
                          "with its last checkpoint: continue it with resume=true")
    if process.main:
        mlflow.end_run("FINISHED")
        shutil.rmtree(state_folder(run.run_id), ignore_errors=True)
        click.echo(f"pretrain: finished run {run.run_id} ({config.run_name}, "
                   f"{result.step} steps, final loss {result.final_loss:.4f})")
    return run.run_id


def finished_runs(config: TrainConfig, data_run_id: str, experiment: str,
                  reuse: str = "same-code") -> list[Run]:
    """The finished pretrain runs this config would be on this data (with the knn space it would
    use), newest first, made by the same code unless reuse=any; none under reuse=never. What a
    sweep predicts without training."""
    knn_run_id = ""
    if needs_space(config):  # the space pretrain would use: its data's default one
        knn_run_id = find(data_run_id, default_config(config.track, config.knn_k), reuse) or ""
        if not knn_run_id:
            return []
    found = tracking.find_runs(STEP, run_params(config, data_run_id, knn_run_id), experiment)
    if reuse == "never":
        return []
    if reuse == "any":
        return found
    return [r for r in found if r.data.tags.get(runs.CODE_TAG) == runs.code_version(STEP)]
