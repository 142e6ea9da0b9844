"""`prepare`: sources, cleaning, the lab tokenizer's shift, token ids, statistics, tracking."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from nltk.tokenize import TreebankWordTokenizer
from nltk.tokenize.punkt import PunktSentenceTokenizer, PunktTrainer
from transformers import AutoTokenizer

from entrypoints import prepare as prepare_entry
from minimult_ml import corpus, vocab
from minimult_ml.data import TokenizedCorpus
from minimult_ml.prepare import load

from .conftest import ROOT, SMALL, refused

PBC = """# language_name:\tEnglish
# closed:\tno
001001001\tIn the beginning God created the heavens (and) the earth.
001001002\tThe earth was formless. It was empty.
040001001\tThe book of the family of Jesus Christ.
040001002\tAbraham was the father of Isaac. Isaac was the father of Jacob.
066022021\tThe grace of the Lord Jesus be with all.
"""


def test_artifacts_and_tokenizer_shift(small_prepared: Path) -> None:
    for name in ("data/train.txt", "data/dev.txt", "data/train.npz", "data/dev.npz",
                 "tokenizer/tokenizer.json", "tokenizer/language_set.json", "stats.json"):
        assert (small_prepared / name).is_file(), name
    tok = AutoTokenizer.from_pretrained(small_prepared / "tokenizer")
    prepared = load(small_prepared)
    v = prepared.languages.languages[1].offset
    assert len(tok) == prepared.languages.vocab_size == 2 * v
    # Every English token, written as Fake-English, encodes to its id + V (paper Figure 2).
    english = [t for t, i in sorted(tok.get_vocab().items(), key=lambda kv: kv[1]) if i < v]
    for i, token in enumerate(english[5:], start=5):
        assert tok.convert_tokens_to_ids("::" + token) == i + v
    sentence = "He ate wild honey."
    en_ids = tok(sentence)["input_ids"]
    fake = " ".join("::" + t for t in tok.tokenize(sentence))
    fake_ids = tok(fake)["input_ids"]
    assert [f - e for e, f in zip(en_ids[1:-1], fake_ids[1:-1], strict=True)] == [v] * (
        len(en_ids) - 2)
    assert en_ids[0] == fake_ids[0] == 2 and en_ids[-1] == fake_ids[-1] == 3  # shared specials


def test_token_ids_match_text(small_prepared: Path) -> None:
    prepared = load(small_prepared)
    for split, ids in (("train", prepared.train), ("dev", prepared.dev)):
        text = (small_prepared / "data" / f"{split}.txt").read_text().splitlines()
        assert len(text) == len(ids)
        for i in (0, len(ids) // 2, len(ids) - 1):
            assert ids.sentence(i) == prepared.tokenizer(text[i], truncation=True)["input_ids"]
    assert prepared.train.lengths.max() <= 128
    assert len(prepared.train) == SMALL.train_sentences
    assert len(prepared.dev) == SMALL.dev_sentences


def test_statistics_agree_with_a_recount(small_prepared: Path) -> None:
    stats = json.loads((small_prepared / "stats.json").read_text())
    for split in ("train", "dev"):
        sents = (small_prepared / "data" / f"{split}.txt").read_text().splitlines()
        words = [w for s in sents for w in TreebankWordTokenizer().tokenize(s)]
        lengths = sorted(len(TreebankWordTokenizer().tokenize(s)) for s in sents)
        n = len(lengths)
        median = (lengths[(n - 1) // 2] + lengths[n // 2]) / 2
        assert stats[split]["sentences"] == len(sents)
        assert stats[split]["words"] == len(words)
        assert stats[split]["word_types"] == len(set(words))
        assert stats[split]["characters"] == len(set("".join(sents).replace(" ", "")))
        assert stats[split]["median_sentence_words"] == median


def test_cleaning_removes_quotes_and_brackets() -> None:
    text = '“He said,”  (to [them]) ‘go’ "now" God`s'
    assert corpus.clean(text) == "He said, to them go now Gods"


def test_pbc_selects_testaments(tmp_path: Path) -> None:
    path = tmp_path / "eng-x-bible-test.txt"
    path.write_text(PBC, encoding="utf-8")
    train = corpus.load_source(f"pbc:{path}", "train")
    dev = corpus.load_source(f"pbc:{path}", "dev")
    assert train == ["The book of the family of Jesus Christ.",
                     "Abraham was the father of Isaac. Isaac was the father of Jacob.",
                     "The grace of the Lord Jesus be with all."]
    assert dev[0].startswith("In the beginning") and len(dev) == 2
    sents = corpus.sentences(train, corpus.sentence_splitter(train))
    assert "Isaac was the father of Jacob." in sents


def test_trained_punkt_is_cached_and_equals_a_fresh_training(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    verses = corpus.load_source("bible", "train")[:3000]
    text = "\n".join(verses)
    fresh = PunktTrainer(text, lang_vars=corpus._SentenceEnds()).get_params()
    expected = PunktSentenceTokenizer(text, lang_vars=corpus._SentenceEnds())  # trained anew
    trained = corpus.trained_punkt(text)  # trains, and keeps the parameters
    [saved] = (tmp_path / "minimult" / "punkt").iterdir()
    # The second time nothing is trained: the parameters come from the cache, equal.
    monkeypatch.setattr(PunktTrainer, "train", lambda *a, **k: pytest.fail("trained again"))
    cached = corpus.trained_punkt(text)
    for params in (trained, cached):
        assert params.abbrev_types == fresh.abbrev_types and params.abbrev_types
        assert params.collocations == fresh.collocations
        assert params.sent_starters == fresh.sent_starters
        assert dict(params.ortho_context) == dict(fresh.ortho_context)
    splitter = corpus.Splitter(PunktSentenceTokenizer(cached, lang_vars=corpus._SentenceEnds()),
                               "trained")
    assert [splitter.split(v) for v in verses[:300]] == [expected.tokenize(v) for v in verses[:300]]
    # Another text has a key of its own; a damaged file is trained again and rewritten.
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    corpus.trained_punkt(text[:-1])
    assert len(list(saved.parent.iterdir())) == 2
    saved.write_text("{")
    assert corpus.trained_punkt(text).abbrev_types == fresh.abbrev_types
    assert json.loads(saved.read_text())["abbrev_types"] == sorted(fresh.abbrev_types)


def test_token_corpus_round_trip(tmp_path: Path) -> None:
    lists = [[2, 10, 11, 3], [2, 7, 3], [2, 3]]
    c = TokenizedCorpus.from_lists(lists)
    c.save(tmp_path / "c.npz")
    back = TokenizedCorpus.load(tmp_path / "c.npz")
    assert [back.sentence(i) for i in range(3)] == lists
    assert back.fingerprint() == c.fingerprint()
    assert back.padded().tolist() == [[2, 10, 11, 3], [2, 7, 3, 0], [2, 3, 0, 0]]
    assert TokenizedCorpus.from_lists([[2, 9, 3]]).fingerprint() != c.fingerprint()


def _bad(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    return refused(prepare_entry.command, args, capsys)


def test_bad_inputs(tmp_path: Path, tracking: str, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Caf\xe9 au lait.\n".encode("latin-1"))
    missing = tmp_path / "missing.txt"
    assert "missing.txt" in _bad(["--source", f"text:{missing}"], capsys)
    assert "no train sentences" in _bad(["--source", f"text:{empty}"], capsys)
    assert "UTF-8" in _bad(["--source", f"text:{latin1}"], capsys)
    assert "unknown source" in _bad(["--source", "gutenberg:foo"], capsys)
    assert "alphabet" in _bad(["--train-sentences", "300", "--vocab-size", "20"], capsys)
    assert "dev_sentences" in _bad(["--dev-sentences", "0"], capsys)
    assert "vocab-size" in _bad(["--vocab-size", "many"], capsys)
    assert "'inf' is not a finite number" in _bad(["--bytes-per-language", "inf"], capsys)
    # Nothing half-written: no run exists in the experiment.
    experiment = mlflow.get_experiment_by_name(tracking)
    assert experiment is None or not MlflowClient().search_runs([experiment.experiment_id])


def test_mlflow_run_entry_point_and_reuse(tracking: str) -> None:
    args = ["mlflow", "run", str(ROOT), "-e", "prepare", "--env-manager", "local",
            "--experiment-name", tracking,
            "-P", "train_sentences=300", "-P", "dev_sentences=50", "-P", "vocab_size=300"]
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    first = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    experiment = mlflow.get_experiment_by_name(tracking)
    runs = MlflowClient().search_runs([experiment.experiment_id], "tags.step = 'prepare'")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["vocab_size"] == "300" and len(run.data.params["train_sha256"]) == 64
    assert run.data.metrics["train/sentences"] == 300
    files = {f.path for f in MlflowClient().list_artifacts(run.info.run_id)}
    assert {"data", "tokenizer", "stats.json"} <= files
    tok_dir = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="tokenizer")
    ids = vocab.Tokenizers.load(tok_dir).merged("In the beginning")["input_ids"]
    assert ids[0] == 2 and ids[-1] == 3
    train = TokenizedCorpus.load(mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="data/train.npz"))
    assert train.fingerprint() == run.data.params["train_sha256"]
    assert np.all(train.ids < 300)
    # Same parameters again: the finished run is reused, no new prepare run.
    second = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"reusing finished run {run.info.run_id}" in second.stdout
    assert len(MlflowClient().search_runs([experiment.experiment_id], "tags.step = 'prepare'")) == 1


def test_vocabulary_ids_are_in_frequency_order(small_prepared: Path) -> None:
    """Ids do not depend on the trainer's hash-order tie-breaking: specials, then frequency in
    the training corpus, ties by the token's string."""
    prepared = load(small_prepared)
    english = prepared.tokenizers.by_language["en"]
    sents = (small_prepared / "data" / "train.txt").read_text().splitlines()
    counts: dict[str, int] = {}
    for ids in english(sents, truncation=True)["input_ids"]:
        for t in english.convert_ids_to_tokens(ids):
            counts[t] = counts.get(t, 0) + 1
    ordered = english.convert_ids_to_tokens(list(range(5, len(english))))
    assert ordered == sorted(ordered, key=lambda t: (-counts.get(t, 0), t))
    assert counts[ordered[0]] > counts.get(ordered[-1], 0)
