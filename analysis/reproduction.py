"""The reproduction sweep behind the tables (MLproject `main`).

prepare → pretrain, evaluated while it trains (knn-replace builds its space inside pretrain) for
every exp × seed, then the analysis. As in MLflow's multistep-workflow example each step is its
own `mlflow run` process, so one failing step cannot take the others down, and a step whose
finished run already exists is not run again. A pretraining only counts as done once its final
checkpoint is evaluated: a finished run that is not gets an `evaluate` step instead of a new
training. A failed step is retried once (pretraining resumes from its last checkpoint), and the
sweep goes on with the others.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import click
import mlflow
from mlflow.exceptions import ExecutionException

from analysis.runs import PretrainRun
from analysis.tables import TABLE2_IDS
from entrypoints import knn_space
from entrypoints import pretrain as pretrain_entry
from minimult_ml import experiments, tracking
from minimult_ml.errors import InputError
from minimult_ml.experiments import TrainConfig
from minimult_ml.prepare import PrepareConfig

SEEDS = (0, 42, 43, 100, 101)  # paper Table 9


@dataclass(frozen=True)
class Profile:
    """How much data and training a sweep spends: the paper's, or a CPU smoke check."""

    prepare: PrepareConfig
    epoch_scale: float  # of each exp's epochs (100; 200 for no-parallel)
    eval_every: int  # steps between evaluated checkpoints (the curves of Figures 6–7)
    batch_size: int = 256

    def epochs(self, exp: str) -> int | None:
        """The epochs to pass to pretrain: None (the exp's default) at scale 1."""
        if self.epoch_scale == 1:
            return None
        return max(1, round(experiments.resolve(exp).epochs * self.epoch_scale))


PROFILES = {
    "paper": Profile(PrepareConfig(), epoch_scale=1, eval_every=500),
    # A smoke check of the whole chain on a laptop CPU, a few minutes per BERT-small run on
    # one core: 1% of the epochs (1; 2 for no-parallel) at smaller batches for more steps, a
    # short dev set. The whole training corpus, though: on a 2,000-sentence slice the WordPiece
    # trainer's ties at the vocabulary's cut-off differ from process to process, and so would
    # the data. Far from the paper's numbers.
    "quick": Profile(PrepareConfig(dev_sentences=300), epoch_scale=0.01, eval_every=100,
                     batch_size=64),
}


@dataclass
class Outcome:
    step: str  # e.g. "pretrain exp=8 seed=0"
    status: str  # reused, ran, ran after a retry, failed, skipped
    run_id: str = ""
    detail: str = ""

    def line(self) -> str:
        return " ".join(x for x in (f"{self.status:>18s}  {self.step}", self.run_id,
                                    self.detail) if x)


Launch = Callable[[str, dict[str, object]], bool]


def mlflow_launcher(project_uri: str, experiment: str) -> Launch:
    """Run an entry point of the project as its own process, as MLflow's multistep example does;
    True when it succeeded."""
    def launch(entry_point: str, parameters: dict[str, object]) -> bool:
        try:
            mlflow.projects.run(uri=project_uri, entry_point=entry_point,
                                parameters=parameters, env_manager="local",
                                experiment_name=experiment, synchronous=True)
        except ExecutionException:
            return False
        return True

    return launch


def attempt(step: str, launch: Callable[[], bool],
            done: Callable[[], str | None] | None) -> Outcome:
    """Reuse a done step, else launch it, once more if it fails. done() gives the id of the
    step's finished run or None; without it, a step is done when its process succeeded."""
    if done and (run_id := done()):
        return Outcome(step, "reused", run_id)
    for tries in (1, 2):
        click.echo(f"sweep: {step}" + (" (retry)" if tries == 2 else ""))
        if launch() and (done is None or (run_id := done())):
            return Outcome(step, "ran" if tries == 1 else "ran after a retry",
                           run_id if done else "")
    return Outcome(step, "failed", detail="twice; its own output above says why")


def prepare_step(profile: Profile, experiment: str, launch: Launch) -> Outcome:
    params = dataclasses.asdict(profile.prepare)

    def done() -> str | None:
        run = tracking.find_run("prepare", params, experiment)
        return run.info.run_id if run else None

    return attempt("prepare", lambda: launch("prepare", params), done)


def pretrain_config(exp: str, seed: int, profile: Profile) -> TrainConfig | None:
    """The config pretrain will train for this sweep's parameters; None for an exp that does
    not resolve (its own step then says why)."""
    try:
        return pretrain_entry.resolve_config(exp, profile.eval_every, "lab", seed=seed,
                                             epochs=profile.epochs(exp),
                                             batch_size=profile.batch_size)
    except InputError:
        return None


def finished_pretrain(config: TrainConfig | None, data_run_id: str,
                      experiment: str) -> list[PretrainRun]:
    """The finished pretrain runs of `config` on this data, newest first."""
    if config is None:
        return []
    knn_run_id = ""
    if config.p_knn > 0:  # the space pretrain would use: its data's default one
        knn_run_id = knn_space.find(data_run_id,
                                    knn_space.default_config(config.track, config.knn_k)) or ""
        if not knn_run_id:
            return []
    params = pretrain_entry.run_params(config, data_run_id, knn_run_id)
    return [PretrainRun(r) for r in tracking.find_runs("pretrain", params, experiment)]


def pretrain_step(exp: str, seed: int, profile: Profile, data_run_id: str, experiment: str,
                  launch: Launch) -> Outcome:
    config = pretrain_config(exp, seed, profile)
    # Resolved values where known, so that `mlflow run`'s own run shows what was trained.
    parameters = {"exp": exp, "seed": seed, "epochs": "", "batch_size": profile.batch_size,
                  "eval_every": profile.eval_every, "data_run_id": data_run_id,
                  "resume": "true"}
    if config:
        parameters |= {"exp": config.exp, "epochs": config.epochs,
                       "checkpoint_every": config.checkpoint_every}

    def done() -> str | None:
        runs = finished_pretrain(config, data_run_id, experiment)
        return next((r.run_id for r in runs if r.problem is None), None)

    def run() -> bool:
        if runs := finished_pretrain(config, data_run_id, experiment):
            # Trained, but its final checkpoint is not evaluated: evaluate instead of retraining.
            return launch("evaluate", {"run_id": runs[0].run_id, "checkpoints": "last"})
        return launch("pretrain", parameters)

    return attempt(f"pretrain exp={exp} seed={seed}", run, done)


def analysis_step(exps: list[str], experiment: str, launch: Launch) -> Outcome:
    """Table 1, and Table 2 when the sweep has one of its no-parallel rows."""
    ids = set()
    for exp in exps:
        try:
            ids.add(experiments.resolve(exp).paper_id)
        except InputError:
            continue
    tables = "1,2" if ids & (set(TABLE2_IDS) - {"0"}) else "1"
    params = {"tables": tables, "experiment": experiment}
    return attempt(f"analysis tables={tables}", lambda: launch("analysis", params), None)


def sweep(exps: list[str], seeds: list[int], profile: Profile, experiment: str,
          launch: Launch) -> list[Outcome]:
    """Every step of the sweep, in order; the outcome of each."""
    outcomes = [prepare_step(profile, experiment, launch)]
    data_run_id = outcomes[0].run_id
    for exp in exps:
        for seed in seeds:
            if not data_run_id:
                outcomes.append(Outcome(f"pretrain exp={exp} seed={seed}", "skipped",
                                        detail="prepare failed"))
                continue
            outcomes.append(pretrain_step(exp, seed, profile, data_run_id, experiment, launch))
    return outcomes
