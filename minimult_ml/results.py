"""A pretrain run and its evaluation, as read from the tracking server: the scores of its final
checkpoint and the per-checkpoint history behind the curves. The sweep asks it whether a
pretraining is done; the analysis builds Tables 1–2 from it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from minimult_ml import tracking
from minimult_ml.experiments import PARAM_NAMES

TABLE_METRICS = tracking.TABLE1_METRICS
# What an evaluation of a real-track run gives of them (evaluation.evaluate_real): retrieval
# between English and each language on parallel verses, and the perplexities.
REAL_METRICS = (tracking.retrieval_p1(0), tracking.retrieval_p1(8), tracking.PPL_TRAIN,
                tracking.PPL_DEV)
# Params that name a run's training setup, beside its exp and seed; runs of one exp are only
# averaged when these agree (a quick smoke run never mixes with a paper-length one).
IGNORED_SETTINGS = {"exp", "paper_id", "seed", "checkpoint_every", "log_every", "compile"}
SETTINGS = (*(name for name in PARAM_NAMES if name not in IGNORED_SETTINGS), "data_run_id",
            "knn_run_id")


@dataclass
class PretrainRun:
    """A finished pretrain run and its evaluation: the scores of its final checkpoint, and the
    history of every evaluated checkpoint (metric → step → value)."""

    run: Run

    @property
    def run_id(self) -> str:
        return self.run.info.run_id

    @property
    def exp(self) -> str:
        return self.run.data.tags.get("exp", "")

    @property
    def paper_id(self) -> str:
        return self.run.data.tags.get("paper_id", "x")

    @property
    def seed(self) -> int:
        return int(self.run.data.tags.get("seed", self.run.data.params.get("seed", -1)))

    @property
    def track(self) -> str:
        return self.run.data.tags.get("track", "lab")

    @property
    def required(self) -> tuple[str, ...]:
        """The metrics a complete evaluation of this run has: Table 1's, or the real track's."""
        return REAL_METRICS if self.track == "real" else TABLE_METRICS

    @property
    def settings(self) -> tuple[tuple[str, str], ...]:
        """What the runs of an exp must share to be averaged: the training setup and the size
        of the dev set of the final checkpoint's newest evaluation (retrieval among 1,000
        sentences is easier than among 10,000; "" where the evaluation did not record it)."""
        params = self.run.data.params
        dev = self.run.data.metrics.get(tracking.DEV_SENTENCES)  # at the last evaluated step
        return (*((k, params.get(k, "")) for k in SETTINGS),
                ("dev_sentences", "" if dev is None else str(int(dev))))

    @cached_property
    def final_step(self) -> int | None:
        """The step of the last checkpoint: the final model of a finished run."""
        steps = tracking.checkpoint_steps(self.run_id)
        return steps[-1] if steps else None

    @cached_property
    def history(self) -> dict[str, dict[int, float]]:
        """metric → step → value for Table 1's metrics; a checkpoint evaluated twice keeps
        its newest value."""
        client = MlflowClient()
        found: dict[str, dict[int, float]] = {}
        for key in TABLE_METRICS:
            if key not in self.run.data.metrics:  # never logged: spare the request
                continue
            with tracking.server_errors():
                points = client.get_metric_history(self.run_id, key)
            found[key] = {m.step: m.value for m in sorted(points, key=lambda m: m.timestamp)}
        return found

    @property
    def final(self) -> dict[str, float]:
        """Table 1's metrics at the final checkpoint: only those evaluated there."""
        return {key: steps[self.final_step] for key, steps in self.history.items()
                if self.final_step in steps}

    @property
    def evaluated_steps(self) -> list[int]:
        return sorted({step for steps in self.history.values() for step in steps})

    @property
    def problem(self) -> str | None:
        """Why this run has no complete evaluation (a Table 1 row, in the lab), or None when it
        has one."""
        if self.run.info.status != "FINISHED":
            return f"not finished ({self.run.info.status.lower()})"
        if self.final_step is None:
            return "no checkpoint"
        if not self.history:
            return "no evaluation"
        missing = [key for key in self.required if key not in self.final]
        if len(missing) == len(self.required):
            return (f"final checkpoint (step {self.final_step}) not evaluated; last evaluated "
                    f"step {self.evaluated_steps[-1]}")
        if missing:
            return f"final checkpoint evaluated without {', '.join(missing)}"
        return None
