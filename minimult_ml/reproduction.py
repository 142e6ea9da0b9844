"""The reproduction sweeps behind the tables (MLproject `main`).

The lab (Tables 1–2): prepare → pretrain, evaluated while it trains (knn-replace builds its space
inside pretrain) for every exp × seed, then the analysis. The real track (Tables 3–4, `track=real`):
prepare the Bibles' languages → pretrain each real exp × seed (evaluated on the parallel dev
verses) → zero-shot bible-genre transfer of each → kendall-tau of the first exp's model against
its transfer accuracies → the analysis. As in MLflow's multistep-workflow example each step is its
own `mlflow run` process, so one failing step cannot take the others down, and a step whose
finished run already exists — same parameters, same code (see `steps.runs`) — is not run again.
A pretraining only counts as done once its final checkpoint is evaluated by the current evaluate
code: a finished run that is not gets an `evaluate` step instead of a new training. A failed
step is retried once (pretraining resumes from its last checkpoint), and the sweep goes on with
the others.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click
import mlflow
from mlflow.exceptions import ExecutionException

from minimult_ml import bibles, experiments, tracking
from minimult_ml.errors import InputError, check_seed
from minimult_ml.experiments import TrainConfig
from minimult_ml.prepare import PrepareConfig
from minimult_ml.results import PretrainRun
from minimult_ml.steps import evaluate as evaluate_step
from minimult_ml.steps import pretrain as pretrain_step
from minimult_ml.steps import runs
from minimult_ml.transfer import FinetuneConfig

SEEDS = (0, 42, 43, 100, 101)  # paper Table 9


@dataclass(frozen=True)
class Profile:
    """How much data and training a sweep spends: the paper's, or a CPU smoke check."""

    prepare: PrepareConfig
    epoch_scale: float  # of each exp's epochs (100; 200 for no-parallel; 2 real)
    eval_every: int  # steps between evaluated checkpoints (the curves of Figures 6–7)
    batch_size: int = 256
    size: str | None = None  # the exps' own (small in the lab, base in the real track) unless set
    lr: float | None = None  # the exps' own unless set
    # The real track only: bible-genre fine-tuning, and the test verses kendall-tau aligns.
    transfer_epochs: float = 3.0
    transfer_examples: int = 0  # English training verses (0 = all)
    transfer_lr: float = 2e-5  # Devlin et al.'s, for BERT-base
    tau_sentences: int = 2500  # per language (the Bibles have about 1,500 test verses)

    @property
    def track(self) -> str:
        return "lab" if self.prepare.is_lab else "real"

    def pretrain_overrides(self, exp: str) -> dict[str, object]:
        """What pretrain is given besides exp and seed (None: the exp's default)."""
        return {"epochs": self.epochs(exp), "batch_size": self.batch_size, "size": self.size,
                "lr": self.lr}

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
REAL_PROFILES = {
    # Every language of the Bibles, BERT-base for the real exps' 2 epochs: a GPU's work.
    "paper": Profile(PrepareConfig.real(languages=",".join(bibles.languages())), epoch_scale=1,
                     eval_every=1000),
    # en, de, hi on a CPU: 4,000 training verses each, BERT-small at the lab's learning rate
    # for 5 epochs, fine-tuned on 2,000 English verses. Fine-tuning BERT-small at BERT-base's
    # 2e-5 learns nothing in 2 epochs (measured: every language at the majority class, .260);
    # at 1e-3 English reaches .39.
    "quick": Profile(PrepareConfig.real(train_sentences=4000, dev_sentences=300), epoch_scale=2.5,
                     eval_every=200, batch_size=64, size="small", lr=2e-3, transfer_epochs=2,
                     transfer_examples=2000, transfer_lr=1e-3, tau_sentences=300),
}
TRANSFER_TASK = "bible-genre"  # the real track's transfer task offline (genre.py)


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
            done: Callable[[], str | None] | None, look_first: bool = True) -> Outcome:
    """Reuse a done step (unless not `look_first`), else launch it, once more if it fails.
    done() gives the id of the step's finished run or None; without it, a step is done when its
    process succeeded."""
    if done and look_first and (run_id := done()):
        return Outcome(step, "reused", run_id)
    for tries in (1, 2):
        click.echo(f"sweep: {step}" + (" (retry)" if tries == 2 else ""))
        if launch() and (done is None or (run_id := done())):
            return Outcome(step, "ran" if tries == 1 else "ran after a retry",
                           run_id if done else "")
    return Outcome(step, "failed", detail="twice; its own output above says why")


def prepare_step(profile: Profile, experiment: str, launch: Launch, reuse: str) -> Outcome:
    params = dataclasses.asdict(profile.prepare)

    def done() -> str | None:
        # Under reuse=never only the launched step's own run counts: it is the newest made by
        # this code.
        run = runs.find_finished("prepare", params, experiment,
                                 "same-code" if reuse == "never" else reuse)
        return run.info.run_id if run else None

    return attempt("prepare", lambda: launch("prepare", params | {"reuse": reuse}), done,
                   look_first=reuse != "never")


def pretrain_config(exp: str, seed: int, profile: Profile) -> TrainConfig:
    """The config pretrain will train for this sweep's parameters (an exp that does not resolve
    is an InputError, before the sweep starts)."""
    return pretrain_step.resolve_config(exp, profile.eval_every, profile.track, seed=seed,
                                        **profile.pretrain_overrides(exp))


def finished_pretrain(config: TrainConfig, data_run_id: str, experiment: str,
                      reuse: str) -> list[PretrainRun]:
    """The finished pretrain runs of `config` on this data, newest first (see
    `pretrain.finished_runs`)."""
    return [PretrainRun(r) for r in pretrain_step.finished_runs(config, data_run_id, experiment,
                                                                reuse)]


def evaluated_by_this_code(run: PretrainRun, reuse: str) -> bool:
    """Whether the run's evaluation counts: made by the evaluate step's current code (under
    reuse=any, any evaluation does)."""
    return reuse == "any" or run.run.data.tags.get(evaluate_step.CODE_TAG) == \
        runs.code_version("evaluate")


def pretrain_sweep_step(exp: str, seed: int, profile: Profile, data_run_id: str,
                        experiment: str, launch: Launch, reuse: str) -> Outcome:
    config = pretrain_config(exp, seed, profile)
    # Resolved values where known, so that `mlflow run`'s own run shows what was trained.
    parameters = {"exp": config.exp, "seed": seed, "epochs": config.epochs,
                  "batch_size": profile.batch_size, "eval_every": profile.eval_every,
                  "checkpoint_every": config.checkpoint_every, "data_run_id": data_run_id,
                  "resume": "true", "reuse": reuse, "size": profile.size or "",
                  "lr": profile.lr or ""}
    # Under reuse=never only what this sweep trains counts: it is made by this code.
    found_by = "same-code" if reuse == "never" else reuse

    def done() -> str | None:
        found = finished_pretrain(config, data_run_id, experiment, found_by)
        return next((r.run_id for r in found
                     if r.problem is None and evaluated_by_this_code(r, found_by)), None)

    def run() -> bool:
        if found := finished_pretrain(config, data_run_id, experiment, found_by):
            # Trained, but its final checkpoint is not evaluated (or by other code): evaluate
            # instead of retraining; every checkpoint when the curves came from other code.
            newest = found[0]
            stale = newest.problem is None or (newest.history and \
                not evaluated_by_this_code(newest, found_by))
            return launch("evaluate", {"run_id": newest.run_id,
                                       "checkpoints": "all" if stale else "last"})
        return launch("pretrain", parameters)

    return attempt(f"pretrain exp={exp} seed={seed}", run, done, look_first=reuse != "never")


def transfer_sweep_step(pretrain: Outcome, profile: Profile, experiment: str, launch: Launch,
                        reuse: str) -> Outcome:
    """Zero-shot bible-genre transfer of a pretrain step's model to every language of its
    data, with the in-language bound of each."""
    step = pretrain.step.replace("pretrain", "transfer", 1)
    if not pretrain.run_id:
        return Outcome(step, "skipped", detail="its pretraining did not finish")
    codes = ",".join(profile.prepare.codes)
    finetune = FinetuneConfig(float(profile.transfer_epochs), lr=float(profile.transfer_lr))
    # Every param of a transfer run that could differ: a transfer of the same model made by
    # hand in fewer languages, without the in-language bounds or at another batch size is not
    # this sweep's, and reusing it would leave holes in Tables 3 and 4.
    params = {"run_id": pretrain.run_id, "task": TRANSFER_TASK, "languages": codes,
              "in_language": codes, "train_examples": profile.transfer_examples,
              "epochs": finetune.epochs, "batch_size": finetune.batch_size, "lr": finetune.lr,
              "seed": finetune.seed}
    found_by = "same-code" if reuse == "never" else reuse

    def done() -> str | None:
        run = runs.find_finished("transfer", params | {"checkpoint": "model"}, experiment,
                                 found_by)
        return run.info.run_id if run else None

    return attempt(step, lambda: launch("transfer", params | {"reuse": reuse}), done,
                   look_first=reuse != "never")


def kendall_tau_step(pretrain: Outcome, transfer: Outcome, profile: Profile, experiment: str,
                     launch: Launch) -> Outcome:
    """Table 4 of our own model: the word-order distance from English of every language of its
    data (on the Bibles' test verses), correlated with its zero-shot transfer accuracies."""
    step = pretrain.step.replace("pretrain", "kendall-tau", 1)
    if not (pretrain.run_id and transfer.run_id):
        return Outcome(step, "skipped", detail="its pretraining or transfer did not finish")
    languages = [c for c in profile.prepare.codes if c != "en"]
    params = {"model": f"run:{pretrain.run_id}", "data": "bible",
              "languages": ",".join(languages), "sentences": profile.tau_sentences,
              "layer": 8, "accuracies": f"transfer:{transfer.run_id}"}

    def done() -> str | None:
        run = runs.find_finished("kendall-tau", params, experiment, "same-code")
        return run.info.run_id if run else None

    return attempt(step, lambda: launch("kendall-tau", params), done)


def analysis_step(exps: list[str], experiment: str, launch: Launch) -> Outcome:
    """Table 1, and Table 2 when the sweep has one of its no-parallel rows; logged as an
    analysis run (the sweep's record of what it produced)."""
    table2 = False
    for exp in exps:
        try:
            table2 |= "no-parallel" in experiments.parse(exp)
        except InputError:
            continue
    tables = "1,2" if table2 else "1"
    params = {"tables": tables, "experiment": experiment, "log": "true"}
    return attempt(f"analysis tables={tables}", lambda: launch("analysis", params), None)


def real_analysis_step(experiment: str, launch: Launch) -> Outcome:
    """Tables 3 and 4 of the real track's runs, logged as an analysis run."""
    params = {"tables": "3,4", "experiment": experiment, "real_experiment": experiment,
              "log": "true"}
    return attempt("analysis tables=3,4", lambda: launch("analysis", params), None)


def sweep(exps: list[str], seeds: list[int], profile: Profile, experiment: str,
          launch: Launch, reuse: str = "same-code") -> list[Outcome]:
    """Every step of the sweep, in order; the outcome of each."""
    runs.check_reuse(reuse)
    outcomes = [prepare_step(profile, experiment, launch, reuse)]
    data_run_id = outcomes[0].run_id
    for exp in exps:
        for seed in seeds:
            if not data_run_id:
                outcomes.append(Outcome(f"pretrain exp={exp} seed={seed}", "skipped",
                                        detail="prepare failed"))
                continue
            trained = pretrain_sweep_step(exp, seed, profile, data_run_id, experiment, launch,
                                          reuse)
            outcomes.append(trained)
            if profile.track == "real":
                transferred = transfer_sweep_step(trained, profile, experiment, launch, reuse)
                outcomes.append(transferred)
                if exp == exps[0] and seed == seeds[0]:
                    outcomes.append(kendall_tau_step(trained, transferred, profile,
                                                     experiment, launch))
    return outcomes


def default_exps(track: str) -> list[str]:
    """The exps a sweep of `track` trains unless told: every row of the track's tables."""
    return list(experiments.LAB_IDS if track == "lab" else experiments.REAL_IDS)


def check_exps(exps: list[str], track: str) -> None:
    """Exps of the other track are refused: one sweep, one track."""
    if track == "lab":
        if real := [exp for exp in exps if experiments.named_track(exp)]:
            raise InputError(f"exps {', '.join(real)}: these are real-track exps; sweep them "
                             "with track=real")
    elif lab := [exp for exp in exps if experiments.named_track(exp) != "real"]:
        raise InputError(f"exps {', '.join(lab)}: track=real sweeps the real-track exps "
                         f"{', '.join(experiments.REAL_IDS)}")


def with_languages(profile: Profile, languages: list[str]) -> Profile:
    """A real-track profile on other Bible languages (English among them: it is the transfer's
    source language and the one word order is measured against), their default editions."""
    if profile.track == "lab":
        raise InputError("languages: the lab is English + Fake-English; languages chooses the "
                         "real track's (track=real)")
    if "en" not in languages:
        raise InputError(f"languages {','.join(languages)}: add en, the language the real "
                         "track fine-tunes on and measures word order against")
    given = dataclasses.asdict(profile.prepare) | {"editions": ""}  # the languages' defaults
    del given["languages"]
    return dataclasses.replace(profile, prepare=PrepareConfig.of(",".join(languages), **given))


def main(exps: list[str] | None, seeds: list[int], profile: str, project_uri: str,
         reuse: str = "same-code", track: str = "lab",
         languages: list[str] | None = None) -> list[Outcome]:
    """The sweep of a track as a run of its own (tag step=sweep; each step's run links to it by
    its `sweep_run_id` tag), then the analysis; the outcome of every step, also logged as
    sweep.json. `languages` replaces the real profile's."""
    if track not in ("lab", "real"):
        raise InputError(f"track {track!r}: use lab or real")
    profiles = PROFILES if track == "lab" else REAL_PROFILES
    if profile not in profiles:
        raise InputError(f"profile {profile!r}: use one of {', '.join(profiles)}")
    chosen = with_languages(profiles[profile], languages) if languages else profiles[profile]
    exps = exps or default_exps(track)
    check_exps(exps, track)
    for seed in seeds:
        check_seed(seed, f"seeds: seed {seed}")
    for exp in exps:  # a misspelt exp or a refused combination: one line, before any run
        pretrain_config(exp, SEEDS[0], chosen)  # any seed resolves alike
    runs.check_reuse(reuse)
    experiment = runs.experiment_of(track)
    launch = mlflow_launcher(project_uri, experiment)
    params = {"exps": ",".join(exps), "seeds": ",".join(map(str, seeds)), "profile": profile,
              "reuse": reuse, "track": track, "languages": chosen.prepare.languages}
    tables = "Table 1" if track == "lab" else "Tables 3–4"
    description = (f"Reproduction sweep ({track} track, {profile} profile): exps "
                   f"{', '.join(exps)} × seeds {', '.join(map(str, seeds))}, then {tables}.")
    with tracking.start_run(f"sweep-{track}-{profile}", {"step": "sweep"}, params, experiment,
                            description):
        outcomes = sweep(exps, seeds, chosen, experiment, launch, reuse)
        click.echo("sweep: " + ", ".join(f"{sum(o.status == s for o in outcomes)} {s}"
                                          for s in dict.fromkeys(o.status for o in outcomes)))
        for outcome in outcomes:
            click.echo(outcome.line())
        outcomes.append(analysis_step(exps, experiment, launch) if track == "lab"
                        else real_analysis_step(experiment, launch))
        failed = [o for o in outcomes if o.status in ("failed", "skipped")]
        with tempfile.TemporaryDirectory() as tmp, tracking.server_errors():
            path = Path(tmp) / "sweep.json"
            path.write_text(json.dumps([o.__dict__ for o in outcomes], indent=2))
            mlflow.log_artifact(str(path))
            mlflow.log_metric("failed_steps", len(failed))
    return outcomes
