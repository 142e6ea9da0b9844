"""The real track's reproduction sweep (`main --track real`) end to end on a real tracking
server, on a few hundred verses of en, de, hi: prepare, pretrain, zero-shot transfer, Kendall's
tau and Tables 3-4, every step a real `mlflow run` process; run again, everything is reused."""

from __future__ import annotations

import dataclasses
import json
import re

import mlflow
import pytest

from entrypoints import main as main_entry
from entrypoints.common import run_command
from minimult_ml import bibles, reproduction, tasks
from minimult_ml import tracking as tracking_lib
from minimult_ml.prepare import PrepareConfig

from .conftest import csv_rows, runs

# The real track on a few hundred verses of en, de, hi: two epochs of BERT-small.
TINY_REAL = reproduction.Profile(
    PrepareConfig.real(train_sentences=150, dev_sentences=40, vocab_size=300), epoch_scale=1,
    eval_every=28, batch_size=16, size="small", lr=2e-3, transfer_epochs=1,
    transfer_examples=200, tau_sentences=10)


def test_languages_replace_the_real_profiles_and_keep_its_sizes() -> None:
    quick = reproduction.REAL_PROFILES["quick"]
    chosen = reproduction.with_languages(quick, ["en", "fr", "ru", "zh"])
    assert chosen.prepare.codes == ["en", "fr", "ru", "zh"]
    # Each language's default edition, recorded (the profile's were for en, de, hi).
    assert chosen.prepare.editions == ",".join(
        f"{c}:{e}" for c, e in bibles.editions_for(["en", "fr", "ru", "zh"]).items())
    same = ("train_sentences", "dev_sentences", "vocab_size", "seed", "source")
    assert [getattr(chosen.prepare, f) for f in same] == [getattr(quick.prepare, f) for f in same]
    assert dataclasses.replace(chosen, prepare=quick.prepare) == quick


@pytest.mark.usefixtures("steps_on_path")
def test_real_sweep_pretrains_transfers_correlates_and_reuses(
        tracking: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture) -> None:
    monkeypatch.setitem(reproduction.REAL_PROFILES, "quick", TINY_REAL)
    # The profile's sizes, the languages given (in another order than the profile's).
    args = ["--track", "real", "--exps", "0-base", "--seeds", "0", "--profile", "quick",
            "--languages", "en,hi,de"]
    run_command(main_entry.command, args)
    out, _ = capfd.readouterr()
    [prepare] = runs(tracking, "tags.step = 'prepare'")
    [pretrain] = runs(tracking, "tags.step = 'pretrain'")
    [transfer] = runs(tracking, "tags.step = 'transfer'")
    [tau] = runs(tracking, "tags.step = 'kendall-tau'")
    [analysis] = runs(tracking, "tags.step = 'analysis'")
    assert prepare.data.params["languages"] == "en,hi,de"
    assert prepare.data.params["train_sentences"] == str(TINY_REAL.prepare.train_sentences)
    assert pretrain.data.params["data_run_id"] == prepare.info.run_id
    assert (pretrain.data.tags["exp"], pretrain.data.params["size"]) == ("original", "small")
    assert tracking_lib.retrieval_p1(8) in pretrain.data.metrics  # evaluated on the dev verses
    # Transfer of that model to every language; kendall-tau correlates with its accuracies.
    assert transfer.data.tags["pretrain_run_id"] == pretrain.info.run_id
    assert transfer.data.params["task"] == "bible-genre"
    genre = tasks.task("bible-genre")
    accuracy = {code: transfer.data.metrics[genre.accuracy(code)] for code in ("de", "hi")}
    assert tau.data.params["model"] == f"run:{pretrain.info.run_id}"
    assert tau.data.params["accuracies"] == f"transfer:{transfer.info.run_id}"
    table4 = json.loads(mlflow.artifacts.load_text(f"runs:/{tau.info.run_id}/table4.json"))
    for code, value in accuracy.items():  # Table 4 holds them in percent, as the paper's
        assert table4["languages"][code]["accuracy"] == pytest.approx(100 * value)
    # Tables 3 and 4 at the end, from these runs.
    table3 = csv_rows(mlflow.artifacts.load_text(f"runs:/{analysis.info.run_id}/table3.csv"))
    for code, value in accuracy.items():
        assert float(table3["0-base"][f"bible-genre:{code}_mean"]) == pytest.approx(value)
    assert "Table 3" in out and "Table 4" in out

    # Again: everything is reused, nothing trained twice.
    run_command(main_entry.command, args)
    out, _ = capfd.readouterr()
    for step in ("prepare", "pretrain exp=0-base seed=0", "transfer exp=0-base seed=0",
                 "kendall-tau exp=0-base seed=0"):
        assert re.search(rf"reused  {step} \w+", out), step
    for step in ("pretrain", "transfer", "kendall-tau"):
        assert len(runs(tracking, f"tags.step = '{step}'")) == 1


def test_a_transfer_of_other_settings_is_not_the_sweeps(tracking: str) -> None:
    # A finished transfer of the sweep's model made by hand, without the in-language bounds: the
    # sweep must train its own (its table needs the bounds), and reuse only a run of its settings.
    client = mlflow.MlflowClient()
    experiment_id = mlflow.set_experiment(tracking).experiment_id
    codes = ",".join(TINY_REAL.prepare.codes)
    ours = {"run_id": "p0", "task": "bible-genre", "checkpoint": "model", "languages": codes,
            "in_language": codes, "train_examples": 200, "epochs": 1.0, "batch_size": 32,
            "lr": 2e-5, "seed": 42}

    def finished_transfer(**changed: object) -> str:
        run_id = client.create_run(experiment_id, tags={"step": "transfer"}).info.run_id
        for key, value in (ours | changed).items():
            client.log_param(run_id, key, value)
        client.set_terminated(run_id)
        return run_id

    finished_transfer(in_language="none")
    finished_transfer(languages="en,de", in_language="en,de")
    launched = []

    def launch(step: str, params: dict[str, object]) -> bool:
        launched.append((step, params))
        return False  # the launch fails: the step is not reused, and is tried twice

    pretrain = reproduction.Outcome("pretrain exp=0-base seed=0", "ran", "p0")
    outcome = reproduction.transfer_sweep_step(pretrain, TINY_REAL, tracking, launch, "any")
    assert outcome.status == "failed" and len(launched) == 2
    step, params = launched[0]
    # What it launches is what it looks for (the step adds checkpoint=model, the final weights).
    assert step == "transfer" and params == {k: v for k, v in ours.items()
                                             if k != "checkpoint"} | {"reuse": "any"}
    own = finished_transfer()
    outcome = reproduction.transfer_sweep_step(pretrain, TINY_REAL, tracking, launch, "any")
    assert (outcome.status, outcome.run_id, len(launched)) == ("reused", own, 2)
