"""`pretrain`: the registry, the data order, training every exp, tracking, kill-and-resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from transformers import AutoTokenizer, BertForMaskedLM

from entrypoints import pretrain as pretrain_entry
from entrypoints.common import run_command
from minimult_ml import experiments
from minimult_ml.data import TokenizedCorpus, training_examples
from minimult_ml.errors import InputError
from minimult_ml.languages import LanguageSet
from minimult_ml.prepare import load
from minimult_ml.training import epoch_batches, train

from .conftest import ROOT

CPU = torch.device("cpu")


def test_registry_resolves_every_paper_id() -> None:
    for paper_id, mods in experiments.PAPER_IDS.items():
        config = experiments.resolve(paper_id)
        assert config.paper_id == paper_id and config.modifications == frozenset(mods)
    c8 = experiments.resolve("no-random+lang-pos;shift-special")
    assert (c8.paper_id, c8.exp) == ("8", "lang-pos;shift-special;no-random")
    assert (c8.masking.p_mask, c8.masking.p_keep, c8.masking.p_random) == (0.8, 0.2, 0.0)
    assert c8.lang_pos
    assert experiments.resolve("original").paper_id == "0"
    c15 = experiments.resolve("15")
    assert (c15.size, c15.lr) == ("base", 1e-4)
    assert experiments.resolve("21").epochs == 200 and experiments.resolve("21b").lang_pos
    c30 = experiments.resolve("30")
    m30 = c30.masking
    assert (m30.p_mask, m30.p_keep, m30.p_random, m30.p_knn) == (0.5, 0.1, 0.1, 0.3)
    assert experiments.resolve("0", lr=1e-3, seed=7).lr == 1e-3
    assert experiments.resolve("lang-pos;inv-order").paper_id == "x"  # not in the paper
    with pytest.raises(InputError, match=r"valid: a paper ID .* lang-pos"):
        experiments.resolve("lang-pos;colour")


def _corpus(n: int) -> TokenizedCorpus:
    return TokenizedCorpus.from_lists([[2, 9, 3]] * n)


def test_training_examples_parallel_and_not() -> None:
    par = training_examples(_corpus(10), 2, parallel=True)
    assert sorted(map(tuple, par.tolist())) == [(s, k) for s in range(10) for k in (0, 1)]
    non = training_examples(_corpus(10), 2, parallel=False)
    assert non.tolist() == [[s, 0] for s in range(5)] + [[s, 1] for s in range(5, 10)]
    # A multilingual corpus: each sentence in its own language only.
    real = TokenizedCorpus.concatenate([_corpus(2), _corpus(3), _corpus(1)])
    assert training_examples(real, 3, parallel=True).tolist() == [
        [0, 0], [1, 0], [2, 1], [3, 1], [4, 1], [5, 2]]


def test_epoch_batches_cover_every_example_once_and_are_deterministic() -> None:
    examples = training_examples(_corpus(1000), 2, parallel=True)
    lengths = np.random.default_rng(0).integers(3, 128, 1000)
    batches = epoch_batches(examples, lengths, 64, seed=1, epoch=3)
    seen = np.concatenate(batches)
    assert sorted(map(tuple, seen.tolist())) == sorted(map(tuple, examples.tolist()))
    again = epoch_batches(examples, lengths, 64, seed=1, epoch=3)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))
    other = epoch_batches(examples, lengths, 64, seed=1, epoch=4)
    assert not all(np.array_equal(a, b) for a, b in zip(batches, other, strict=True))
    # Length bucketing: padding per batch is far below that of a random batch.
    spread = np.mean([np.ptp(lengths[b[:, 0]]) for b in batches])
    assert spread < 0.2 * np.ptp(lengths)


@pytest.mark.parametrize("paper_id", [i for i in experiments.LAB_IDS if i != "30"])
def test_every_exp_trains_and_checkpoints(paper_id: str, small_prepared: Path,
                                          tmp_path: Path) -> None:
    data = load(small_prepared)
    config = experiments.resolve(paper_id, max_steps=2, batch_size=8, log_every=1)
    logged: list[tuple[int, dict]] = []
    result = train(config, data.train, data.tokenizers, tmp_path, device=CPU,
                   log=lambda m, s: logged.append((s, m)), progress=False)
    folder = tmp_path / "checkpoints" / f"step-{result.step}"
    model = BertForMaskedLM.from_pretrained(folder)
    assert AutoTokenizer.from_pretrained(folder)("In the beginning")["input_ids"][0] == 2
    assert LanguageSet.load(folder) == data.languages
    assert model.config.vocab_size == data.languages.vocab_size
    assert model.config.max_position_embeddings >= 256 and model.config.type_vocab_size >= 2
    assert model.config.hidden_size == (768 if config.size == "base" else 64)
    if config.untrained:
        assert result.step == 0 and not logged
    else:
        assert result.step == 2 and [s for s, _ in logged] == [1, 2]
        assert all(np.isfinite(m["loss/train"]) and m["tokens_per_s"] > 0 for _, m in logged)


def test_loss_decreases_and_same_seed_same_numbers(small_prepared: Path, tmp_path: Path) -> None:
    data = load(small_prepared)
    config = experiments.resolve("0", max_steps=150, batch_size=32, log_every=25)

    def run(out: Path, stop_at: int = 0) -> list[float]:
        losses: list[float] = []

        def log(metrics: dict[str, float], step: int) -> None:
            losses.append(metrics["loss/train"])
            if step == stop_at:
                raise KeyboardInterrupt  # as Ctrl-C: train returns there

        train(config, data.train, data.tokenizers, out, device=CPU, log=log, progress=False)
        return losses

    losses = run(tmp_path / "a")
    assert losses[-1] < losses[0] - 0.5, losses  # from ~ln(800) towards a fitted model
    # The same seed again gives the same numbers (compared over the first 50 steps, to save
    # the test the rest; the learning-rate schedule is the full run's).
    assert run(tmp_path / "b", stop_at=50) == losses[:2]


def test_first_loss_after_a_resume_between_log_steps_is_the_mean_of_its_steps(
        small_prepared: Path, tmp_path: Path) -> None:
    data = load(small_prepared)
    every_step = experiments.resolve("0", max_steps=20, batch_size=16, log_every=1)
    per_step: dict[int, float] = {}
    train(every_step, data.train, data.tokenizers, tmp_path / "a", device=CPU, progress=False,
          log=lambda metrics, step: per_step.__setitem__(step, metrics["loss/train"]))
    # The same run logging every 10 steps, stopped (as by SIGTERM) at its step-15 checkpoint.
    config = experiments.resolve("0", max_steps=20, batch_size=16, log_every=10,
                                 checkpoint_every=5)
    stopped: list[int] = []

    def stop_once(step: int, folder: Path) -> None:
        if step == 15 and not stopped:
            stopped.append(step)
            raise KeyboardInterrupt

    out = tmp_path / "b"
    result = train(config, data.train, data.tokenizers, out, device=CPU, progress=False,
                   on_checkpoint=stop_once)
    assert result.interrupted and result.step == 15
    logged: dict[int, float] = {}
    train(config, data.train, data.tokenizers, out, device=CPU, progress=False, resume=True,
          log=lambda metrics, step: logged.__setitem__(step, metrics["loss/train"]))
    assert list(logged) == [20]  # steps 16–20: five losses, not ten
    assert logged[20] == pytest.approx(sum(per_step[s] for s in range(16, 21)) / 5, rel=1e-5)


def _pretrain(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run_command(pretrain_entry.command, args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    return err


def test_bad_inputs(tracking: str, prepare_run: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert "valid: a paper ID" in _pretrain(["--exp", "bogus"], capsys)
    assert "epochs must be positive" in _pretrain(["--epochs", "0"], capsys)
    assert "batch_size must be positive" in _pretrain(["--batch-size", "-4"], capsys)
    assert "'nan' is not a finite number" in _pretrain(["--lr", "nan"], capsys)
    assert "does not exist" in _pretrain(["--data-run-id", "0123456789abcdef"], capsys)
    run_command(pretrain_entry.command, ["--exp", "18", "--data-run-id", prepare_run])
    capsys.readouterr()
    untrained = MlflowClient().search_runs(
        [mlflow.get_experiment_by_name(tracking).experiment_id])[0]
    assert untrained.data.tags["step"] == "pretrain"
    assert "not a prepare run" in _pretrain(["--data-run-id", untrained.info.run_id], capsys)


def _metric_history(run_id: str, key: str) -> dict[int, float]:
    return {m.step: m.value for m in MlflowClient().get_metric_history(run_id, key)}


def test_kill_and_resume_equals_uninterrupted(tracking: str, prepare_run: str) -> None:
    args = ["--exp", "lang-pos", "--max-steps", "60", "--checkpoint-every", "20",
            "--batch-size", "16", "--data-run-id", prepare_run]
    run_command(pretrain_entry.command, args)
    client = MlflowClient()
    experiment_id = mlflow.get_experiment_by_name(tracking).experiment_id
    (whole,) = client.search_runs([experiment_id], "tags.step = 'pretrain'")
    assert whole.info.status == "FINISHED" and whole.data.tags["exp"] == "lang-pos"
    assert whole.info.run_name == "1-lang-pos-s42"
    files = {f.path for f in client.list_artifacts(whole.info.run_id, "checkpoints")}
    assert files == {f"checkpoints/step-{s}" for s in (20, 40, 60)}
    assert {f.path for f in client.list_artifacts(whole.info.run_id, "model")} >= {
        "model/config.json", "model/model.safetensors", "model/tokenizer.json"}

    # The same training in a process that is SIGKILLed once its step-40 checkpoint and resume
    # state are logged.
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "entrypoints.pretrain", *args], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed_id = None
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        runs = client.search_runs([experiment_id], "attributes.status = 'RUNNING'")
        if runs and runs[0].data.tags.get("resume_step") == "40":
            killed_id = runs[0].info.run_id
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert killed_id is not None, "the training process ended before its step-40 checkpoint"
    assert client.get_run(killed_id).info.status == "RUNNING"  # killed: never ended

    run_command(pretrain_entry.command, [*args, "--resume", "true"])
    resumed = client.get_run(killed_id)
    assert resumed.info.status == "FINISHED"
    assert len(client.search_runs([experiment_id], "tags.step = 'pretrain'")) == 2
    expected = _metric_history(whole.info.run_id, "loss/train")
    got = _metric_history(killed_id, "loss/train")
    assert set(got) == set(expected)
    # Continued, not restarted: steps up to 40 were logged once, by the killed process.
    steps = [m.step for m in client.get_metric_history(killed_id, "loss/train")]
    assert sorted(steps) == sorted(set(steps))
    assert got == pytest.approx(expected, rel=1e-5)
    # And the final weights agree.
    a = BertForMaskedLM.from_pretrained(mlflow.artifacts.download_artifacts(
        run_id=whole.info.run_id, artifact_path="model")).state_dict()
    b = BertForMaskedLM.from_pretrained(mlflow.artifacts.download_artifacts(
        run_id=killed_id, artifact_path="model")).state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
