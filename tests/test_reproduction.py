"""The lab's reproduction sweep (`main`) end to end on a real tracking server: every step a real
`mlflow run` process on a tiny profile; finished runs reused, a failing exp retried once and
reported while the others go on, an unevaluated run evaluated rather than retrained. (The real
track's sweep is in test_real_sweep.py: a file of its own, so the two run in parallel.)"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from entrypoints import main as main_entry
from entrypoints.common import run_command
from minimult_ml import reproduction
from minimult_ml import tracking as tracking_lib
from minimult_ml.prepare import PrepareConfig
from minimult_ml.results import PretrainRun
from minimult_ml.steps import pretrain as pretrain_step

from .conftest import runs

# One epoch of 200 sentences in both languages at batch 32: 13 steps, evaluated at 8 and 13.
TINY = reproduction.Profile(PrepareConfig(train_sentences=200, dev_sentences=40, vocab_size=300),
                     epoch_scale=0.01, eval_every=8, batch_size=32)
BAD = "lang-pos+colour"


def failing_pretrain_of(exp: str) -> Callable[[str, str], reproduction.Launch]:
    """The sweep's launcher, except that the pretrain step of `exp` fails in its own process
    (it is launched with an unknown modification instead)."""
    real = reproduction.mlflow_launcher

    def launcher(project_uri: str, experiment: str) -> reproduction.Launch:
        launch = real(project_uri, experiment)
        return lambda entry_point, params: launch(
            entry_point, params | {"exp": BAD}
            if entry_point == "pretrain" and params["exp"] == exp else params)

    return launcher


@pytest.mark.usefixtures("steps_on_path")
def test_sweep_reuses_retries_reports_and_evaluates(tracking: str, monkeypatch: pytest.MonkeyPatch,
                                                     capfd: pytest.CaptureFixture) -> None:
    monkeypatch.setitem(reproduction.PROFILES, "quick", TINY)
    args = ["--seeds", "0", "--profile", "quick"]

    # 0. A misspelt exp is refused in one line before anything runs.
    with pytest.raises(SystemExit) as exit_info:
        run_command(main_entry.command, ["--exps", f"8,{BAD}", *args])
    assert exit_info.value.code == 2
    _, err = capfd.readouterr()
    assert err.startswith(f"error: unknown exp {BAD!r} (colour); valid: a paper ID"), err
    assert len(err.strip().splitlines()) == 1
    assert mlflow.get_experiment_by_name(tracking) is None  # no run, not even its experiment

    # 1. A good exp and one whose step fails in its own process.
    monkeypatch.setattr(reproduction, "mlflow_launcher", failing_pretrain_of("inv-order"))
    with pytest.raises(SystemExit) as exit_info:
        run_command(main_entry.command, ["--exps", "8,3", *args])
    assert exit_info.value.code == 1
    out, err = capfd.readouterr()
    assert err.count(f"error: unknown exp {BAD!r}") == 2  # the step's own line, twice
    assert "sweep: pretrain exp=3 seed=0 (retry)" in out
    assert err.strip().splitlines()[-1] == ("sweep: 1 step(s) did not complete: pretrain "
                                            "exp=3 seed=0 (failed)")
    assert "1 ran, 1 failed" not in out and "sweep: 2 ran, 1 failed" in out
    [prepare] = runs(tracking, "tags.step = 'prepare'")
    [pretrain] = runs(tracking, "tags.step = 'pretrain'")
    assert pretrain.data.tags["exp"] == "lang-pos;shift-special;no-random"
    assert pretrain.info.status == "FINISHED"
    evaluated = PretrainRun(pretrain)
    assert evaluated.problem is None and evaluated.final_step == 13
    assert evaluated.evaluated_steps == [8, 13]
    assert pretrain.data.params["data_run_id"] == prepare.info.run_id
    assert prepare.data.params["train_sentences"] == "200"
    failed = runs(tracking, f"params.exp = '{BAD}' and attributes.status = 'FAILED'")
    assert len(failed) == 2  # the try and the retry, each its own MLflow run
    [sweep_run] = runs(tracking, "tags.step = 'sweep'")
    # The pretrain run is linked to the sweep's, not nested under it: the runs table compares
    # the step runs without expanding anything. `mlflow run`'s own run for the step (whose
    # parameters, as given, differ from the resolved ones) says what it is and sits under it.
    assert pretrain.data.tags["sweep_run_id"] == sweep_run.info.run_id
    assert "mlflow.parentRunId" not in pretrain.data.tags
    [launcher] = runs(tracking, f"tags.see_run_id = '{pretrain.info.run_id}'")
    assert launcher.data.tags["mlflow.project.entryPoint"] == "pretrain"
    assert launcher.data.tags["mlflow.parentRunId"] == pretrain.info.run_id
    assert launcher.data.tags["step"] == "launcher"
    assert launcher.info.run_name == f"launch-{pretrain.info.run_name}"
    # Every run says what it is: a step tag and a name of ours, failed launchers included.
    prefix = {"launcher": "launch-", "sweep": "sweep-", "prepare": "prepare-",
              "pretrain": "8-", "analysis": "analysis"}
    for run in runs(tracking, ""):
        assert run.info.run_name.startswith(prefix[run.data.tags["step"]]), run.info.run_name
    assert {r.info.run_name for r in failed} == {"launch-pretrain"}
    report = json.loads(mlflow.artifacts.load_text(f"runs:/{sweep_run.info.run_id}/sweep.json"))
    assert [(o["step"], o["status"]) for o in report] == [
        ("prepare", "ran"), ("pretrain exp=8 seed=0", "ran"), ("pretrain exp=3 seed=0",
                                                               "failed"),
        ("analysis tables=1", "ran")]
    assert sweep_run.data.metrics["failed_steps"] == 1
    # The analysis at the end shows the trained row, at its final checkpoint.
    [analysis] = runs(tracking, "tags.step = 'analysis'")
    table1 = mlflow.artifacts.load_text(f"runs:/{analysis.info.run_id}/table1.csv")
    row8 = next(line for line in table1.splitlines() if line.startswith("8,"))
    scores = json.loads(mlflow.artifacts.load_text(
        f"runs:/{pretrain.info.run_id}/evaluation/step-13.json"))["scores"]
    assert row8.startswith("8,lang-pos;shift-special;no-random,1,")
    assert float(row8.split(",")[3]) == scores["mult_score"]
    assert re.search(r"^8 +1 ", out, re.M)  # the terminal table's row 8: ID, n = 1 seed
    assert "lang-pos;shift-special;no-random" in out

    # 2. Seed 1 already trained with the sweep's parameters but never evaluated.
    config = reproduction.pretrain_config("8", 1, TINY)
    unevaluated = pretrain_step.pretrain(
        "8", {"seed": 1, "epochs": config.epochs, "batch_size": config.batch_size,
              "checkpoint_every": config.checkpoint_every}, prepare.info.run_id, resume=False)
    assert PretrainRun(MlflowClient().get_run(unevaluated)).problem.startswith("no evaluation")
    capfd.readouterr()
    run_command(main_entry.command, ["--exps", "8", "--seeds", "0,1", "--profile", "quick"])
    out, _ = capfd.readouterr()
    assert f"reused  prepare {prepare.info.run_id}" in out
    assert f"reused  pretrain exp=8 seed=0 {pretrain.info.run_id}" in out
    assert f"ran  pretrain exp=8 seed=1 {unevaluated}" in out
    assert len(runs(tracking, "tags.step = 'pretrain'")) == 2  # nothing retrained
    assert len(runs(tracking, "tags.step = 'prepare'")) == 1
    assert PretrainRun(MlflowClient().get_run(unevaluated)).problem is None
    assert tracking_lib.checkpoint_steps(unevaluated) == [8, 13]
