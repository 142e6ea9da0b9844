"""Zero-shot transfer on the Bibles' division-of-the-canon task, end to end on small real slices
(en, de, hi read from the installed packages): labels, the chapter split against pretraining and
fine-tuning, the majority baseline, the in-language bound, the run it logs, and bad input."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from entrypoints import transfer as transfer_entry
from entrypoints.common import run_command
from minimult_ml import bibles, genre, transfer
from minimult_ml import tracking as tracking_lib
from minimult_ml.errors import InputError
from minimult_ml.prepare import PrepareConfig, load, prepare
from minimult_ml.steps import prepare as prepare_step
from minimult_ml.steps import pretrain as pretrain_step
from minimult_ml.steps.transfer import transfer_run

from .conftest import on_server

REAL = PrepareConfig.of("en,de,hi", train_sentences=300, dev_sentences=100, vocab_size=300)
EDITIONS = bibles.editions_for(["en", "de", "hi"])


def test_divisions_of_the_canon() -> None:
    books = {1: "Law", 5: "Law", 6: "History", 17: "History", 18: "Poetry and Wisdom",
             22: "Poetry and Wisdom", 23: "Major Prophets", 27: "Major Prophets",
             28: "Minor Prophets", 39: "Minor Prophets", 40: "Gospels and Acts",
             44: "Gospels and Acts", 45: "Epistles", 65: "Epistles", 66: "Revelation"}
    assert {b: genre.DIVISIONS[genre.division(b)] for b in books} == books
    assert [sum(genre.division(b) == d for b in range(1, 67)) for d in range(8)] == [
        5, 12, 5, 5, 12, 5, 21, 1]
    with pytest.raises(ValueError):
        genre.division(67)


def test_labels_are_the_same_in_every_language() -> None:
    keys, test = genre.test_sets(EDITIONS, bibles.SPLIT_SEED)
    assert len(keys) > 500 and {len(t) for t in test.values()} == {len(keys)}
    for lang in ("de", "hi"):
        assert test[lang].labels.tolist() == test["en"].labels.tolist()
        # Different text, same verse: the German and Hindi verses are the editions' own.
        expected = bibles.split_verses(EDITIONS[lang], "test")
        assert test[lang].texts == [expected[k] for k in keys]
    assert test["en"].labels.tolist() == [genre.division(book) for book, _, _ in keys]
    assert len(set(test["en"].labels.tolist())) == 8  # every division is tested


@pytest.fixture(scope="module")
def real_prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bible-real")
    prepare(REAL, out)
    return out


def test_no_test_chapter_in_fine_tuning_or_pretraining(real_prepared: Path) -> None:
    keys, test = genre.test_sets(EDITIONS, REAL.seed)
    test_chapters = {k[:2] for k in keys}
    # The transfer's test verses are the prepared run's test verses.
    assert load(real_prepared).verse_keys("test") == keys
    for lang, edition in EDITIONS.items():
        for split in ("train", "dev"):
            chapters = {k[:2] for k in bibles.split_verses(edition, split, REAL.seed)}
            assert not chapters & test_chapters, (lang, split)
    # No test verse of any language is among the token ids pretraining reads.
    data = load(real_prepared)
    for k, lang in enumerate(data.languages.codes):
        train = data.train.language(k)
        pretrained = {tuple(train.sentence(i)) for i in range(len(train))}
        tested = transfer.encode(data.tokenizers, lang, test[lang])["input_ids"]
        assert not pretrained & {tuple(ids) for ids in tested}


@pytest.fixture(scope="module")
def real_run(mlflow_server: str) -> str:
    with on_server(mlflow_server, "fixtures-bible-real"):
        return prepare_step.get_or_run(REAL)


@pytest.fixture(scope="module")
def pretrained(mlflow_server: str, real_run: str) -> str:
    with on_server(mlflow_server, "fixtures-bible-real"):
        return pretrain_step.pretrain("0-base", {"size": "small", "max_steps": 20,
                                                 "batch_size": 16, "lr": 2e-3}, real_run)


def test_transfer_run_with_baseline_and_in_language_bound(tracking: str, pretrained: str) -> None:
    config = transfer.FinetuneConfig(epochs=2, batch_size=16, lr=1e-3)
    run_id = transfer_run(pretrained, None, "bible-genre", "hub", "hub", [], 400, "en,de", config)
    run = MlflowClient().get_run(run_id)
    assert run.data.tags["step"] == "transfer" and run.data.tags["task"] == "bible-genre"
    assert run.data.tags["pretrain_run_id"] == pretrained
    assert run.data.tags["paper_id"] == "0-base"
    assert run.data.params["editions"] == "en:4,de:e,hi:i"
    report = json.loads(tracking_lib.download(run_id, "bible-genre.json").read_text())
    assert report["labels"] == list(genre.DIVISIONS)
    keys, test = genre.test_sets(EDITIONS, REAL.seed)
    # The majority baseline, brute force: the most frequent division among the English training
    # verses the model saw (drawn with the fine-tuning seed), its share of each test set.
    train = genre.split_examples(EDITIONS["en"], "train", REAL.seed).sample(400, 42)
    majority = Counter(train.labels.tolist()).most_common(1)[0][0]
    acc = {}
    for lang in ("en", "de", "hi"):
        r = report["languages"][lang]
        confusion = np.array(r["confusion"])
        assert confusion.sum() == len(keys)
        assert confusion.sum(1).tolist() == np.bincount(test[lang].labels, minlength=8).tolist()
        acc[lang] = np.trace(confusion) / len(keys)
        assert run.data.metrics[f"genre_acc/{lang}"] == pytest.approx(acc[lang])
        assert run.data.metrics[f"genre_acc_majority/{lang}"] == pytest.approx(
            sum(label == majority for label in test[lang].labels) / len(keys))
    # The in-language bound where asked: in English the zero-shot model itself; in German a
    # model fine-tuned on as many German train verses and selected on the German dev chapters.
    assert run.data.params["in_language"] == "en,de"
    assert report["languages"]["en"]["in_language"] == acc["en"]
    assert run.data.metrics["genre_acc_in_language/en"] == acc["en"]
    assert 0 <= run.data.metrics["genre_acc_in_language/de"] <= 1
    assert "genre_acc_in_language/hi" not in run.data.metrics
    assert "finetune/eval_accuracy" in run.data.metrics  # selected on English dev chapters
    assert "finetune_de/eval_accuracy" in run.data.metrics
    assert "finetune_hi/eval_accuracy" not in run.data.metrics
    assert run.data.metrics["train_size"] == 400
    # The same transfer again: the finished run is reused, nothing is trained.
    assert transfer_run(pretrained, None, "bible-genre", "hub", "hub", [], 400, "en,de",
                        config) == run_id
    client = MlflowClient()
    assert {f.path for f in client.list_artifacts(run_id, "figures")} == {
        f"figures/confusion_{lang}.png" for lang in ("en", "de", "hi")}
    assert {f.path for f in client.list_artifacts(run_id, "model")} >= {
        "model/config.json", "model/model.safetensors", "model/languages"}

    # A model that learnt nothing — the same prediction for every verse, the majority
    # division — scores exactly the majority baseline in every language.
    from transformers import BertForSequenceClassification

    from minimult_ml.experiments import load_config
    from minimult_ml.inputs import input_config
    from minimult_ml.vocab import Tokenizers

    folder = tracking_lib.download(run_id, "model")
    model = BertForSequenceClassification.from_pretrained(folder)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.nn.functional.one_hot(torch.tensor(majority), 8))
    tokenizers = Tokenizers.load(folder)
    inputs = input_config(load_config(folder), tokenizers.languages)
    nothing = transfer.test(model, tokenizers, inputs, test, 8, torch.device("cpu"), majority)
    for lang, r in nothing.items():
        assert r["accuracy"] == r["majority"] == pytest.approx(
            run.data.metrics[f"genre_acc_majority/{lang}"])


def _fake_run(experiment_id: str, step: str, params: dict, tags: dict | None = None) -> str:
    client = MlflowClient()
    run = client.create_run(experiment_id, tags={"step": step} | (tags or {}))
    for key, value in params.items():
        client.log_param(run.info.run_id, key, value)
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def _fails(args: list[str], capsys: pytest.CaptureFixture) -> str:
    capsys.readouterr()  # only what the command writes (not MLflow's notes on the test's setup)
    with pytest.raises(SystemExit) as exit_:
        run_command(transfer_entry.command, args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def test_bad_input(tracking: str, pretrained: str, capsys: pytest.CaptureFixture) -> None:
    err = _fails(["--run-id", pretrained, "--task", "sentiment"], capsys)
    assert "unknown task 'sentiment'" in err and "bible-genre, xnli" in err
    err = _fails(["--run-id", pretrained, "--languages", "en,fr"], capsys)
    assert "languages fr: the model knows en, de, hi" in err
    err = _fails(["--run-id", pretrained, "--task", "xnli", "--in-language", "de"], capsys)
    assert "in_language=none" in err
    # A pretrain run of German and Hindi only: nothing to fine-tune on in English.
    experiment = mlflow.set_experiment(tracking).experiment_id
    data = _fake_run(experiment, "prepare", {"languages": "de,hi", "source": "bible",
                                             "editions": "de:e,hi:i", "seed": "0"})
    no_english = _fake_run(experiment, "pretrain", {}, {"data_run_id": data})
    err = _fails(["--run-id", no_english], capsys)
    assert "must have en" in err and "de, hi" in err
    # Real languages not from the Bibles: no division labels.
    data = _fake_run(experiment, "prepare", {"languages": "en,de", "source": "wikipedia"})
    wiki = _fake_run(experiment, "pretrain", {}, {"data_run_id": data})
    assert "source=bible" in _fails(["--run-id", wiki], capsys)
    assert not MlflowClient().search_runs([experiment], "tags.step = 'transfer'")


def test_sample_is_seeded_and_without_replacement() -> None:
    examples = genre.examples([(1, 1, v) for v in range(1, 51)], [str(v) for v in range(50)])
    a, b = examples.sample(20, 3), examples.sample(20, 3)
    assert a.texts == b.texts and len(set(a.texts)) == 20
    assert a.texts == sorted(a.texts, key=int)  # in the original order
    assert examples.sample(80, 3) is examples
    with pytest.raises(InputError):
        transfer.check_languages(["en", "fr"], ["en", "de"])


def test_loading_a_masked_lm_into_an_encoder_prints_no_load_report(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from transformers import AutoModel, BertConfig, BertForMaskedLM

    from minimult_ml.hub import without_load_report

    BertForMaskedLM(BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1,
                               num_attention_heads=1, intermediate_size=16)).save_pretrained(
        tmp_path)

    def reported() -> bool:
        found = any("LOAD REPORT" in r.getMessage() for r in caplog.records)
        caplog.clear()
        return found

    AutoModel.from_pretrained(tmp_path)  # drops cls.*, adds a pooler: transformers reports it
    assert reported()
    with without_load_report():
        AutoModel.from_pretrained(tmp_path)
    assert not reported()
