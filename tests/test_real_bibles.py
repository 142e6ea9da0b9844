"""The real track on the embedded Bibles, offline: prepare en, de, hi from a few hundred verses
each, scripts that tokenise and round-trip, retrieval between languages, the weak-gold
dictionary precision, and prepare → pretrain (evaluated while it trains) → evaluate →
kendall-tau end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from transformers import BertConfig, BertForMaskedLM

from entrypoints import evaluate as evaluate_entry
from entrypoints import kendall_tau as kendall_entry
from entrypoints import prepare as prepare_entry
from entrypoints.common import run_command
from minimult_ml import bibles, crosslingual, experiments, vocab
from minimult_ml import tracking as tracking_lib
from minimult_ml.data import TokenizedCorpus
from minimult_ml.evaluation import Evaluator
from minimult_ml.languages import NUM_SPECIAL, UNK, LanguageSet
from minimult_ml.prepare import PrepareConfig, load, prepare
from minimult_ml.steps import prepare as prepare_step
from minimult_ml.steps.pretrain import pretrain

from .conftest import on_server, refused

BIBLE = PrepareConfig.of("en,de,hi", train_sentences=300, dev_sentences=120, vocab_size=400)
JOHN = 43


@pytest.fixture(scope="module")
def bible_prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bible")
    prepare(BIBLE, out)
    return out


def test_prepare_reads_each_language_from_its_edition(bible_prepared: Path) -> None:
    assert BIBLE.source == "bible" and BIBLE.editions == "en:4,de:e,hi:i"
    data = load(bible_prepared)
    assert data.languages.codes == ["en", "de", "hi"]
    assert np.bincount(data.train.lang).tolist() == [300, 300, 300]
    # dev: the first 120 verses of the dev chapters that all three editions have, one order.
    keys, texts = bibles.parallel({"en": "4", "de": "e", "hi": "i"}, "dev")
    assert data.verse_keys("dev") == keys[:120]
    assert all(bibles.split_of(k) == "dev" for k in keys)
    dev_text = (bible_prepared / "data" / "dev.txt").read_text(encoding="utf-8").splitlines()
    assert dev_text == [t for lang in ("en", "de", "hi") for t in texts[lang][:120]]
    for k, lang in enumerate(data.languages.codes):
        tok = data.tokenizers.by_language[lang]
        assert data.dev.language(k).sentence(7) == tok(texts[lang][7], truncation=True)[
            "input_ids"]
    # test: every parallel test verse, never a verse of a train or dev chapter.
    test_keys = data.verse_keys("test")
    assert len(data.held_out("test")) == 3 * len(test_keys) > 0
    assert {bibles.split_of(k) for k in test_keys} == {"test"}
    assert not {k[:2] for k in test_keys} & {k[:2] for k in keys}
    # Training verses are the first 300 of each edition's train chapters.
    train_en = list(bibles.split_verses("4", "train").values())[:300]
    tok = data.tokenizers.by_language["en"]
    assert data.train.language(0).sentence(299) == tok(train_en[299], truncation=True)[
        "input_ids"]
    stats = json.loads((bible_prepared / "stats.json").read_text())
    assert stats["editions"] == {"en": "4", "de": "e", "hi": "i"}
    assert stats["train"]["hi"] | bibles.statistics(
        list(bibles.split_verses("i", "train").values())[:300], "hi") == stats["train"]["hi"]
    assert stats["dev"]["de"]["verses"] == stats["dev"]["de"]["sentences"] == 120


@pytest.mark.parametrize(("language", "edition"), [("hi", "i"), ("ar", "y"), ("zh", "c")])
def test_devanagari_arabic_and_chinese_tokenise_and_round_trip(language: str,
                                                               edition: str) -> None:
    texts = list(bibles.verses(edition, [JOHN]).values())[:300]
    tok = vocab.train_wordpiece(texts, 1500, what=language)
    for text in texts:
        encoding = tok.encode(text)
        assert UNK not in encoding.ids
        decoded = "".join(t.removeprefix("##") for t in encoding.tokens[1:-1])
        # The BERT normaliser drops zero-width joiners (format characters), nothing else.
        assert decoded == "".join(text.split()).replace("\u200d", "").replace("\u200c", "")
    if language == "zh":  # Chinese characters are words of their own
        assert all(len(t.removeprefix("##")) == 1 for t in tok.encode(texts[0]).tokens[1:-1])


def _evaluator(languages: LanguageSet, vocab_size: int) -> Evaluator:
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=vocab_size, hidden_size=32,
                                       num_hidden_layers=2, num_attention_heads=1,
                                       intermediate_size=64, max_position_embeddings=128))
    return Evaluator(model.eval(), experiments.resolve("0-base", "real", size="small"),
                     languages, torch.device("cpu"))


def test_sentence_vectors_are_each_sentences_own_in_row_order(bible_prepared: Path) -> None:
    data = load(bible_prepared)
    hindi = data.dev.language(2).head(40)
    evaluator = _evaluator(data.languages, data.languages.vocab_size)
    batched = evaluator.sentence_vectors(hindi, 2, [0, 2])
    for i in (0, 17, 39):  # brute force: the sentence alone, its tokens' mean
        local = torch.tensor([hindi.sentence(i)])
        alone = evaluator._forward(local, 2, [0, 2])
        for layer, h in enumerate(alone):
            torch.testing.assert_close(batched[layer][i], h[0, 1:-1].mean(0), rtol=1e-4,
                                       atol=1e-5)


def test_retrieval_of_a_language_and_itself_is_one_and_of_shuffled_verses_chance(
        bible_prepared: Path) -> None:
    """English dev verses as two languages with the same embeddings: each verse finds itself;
    with the second copy's verses shuffled, only chance finds the gold."""
    english = load(bible_prepared).dev.language(0)
    unique: dict[tuple[int, ...], int] = {}
    for i in range(len(english)):
        unique.setdefault(tuple(english.sentence(i)), i)
    rows = sorted(unique.values())  # repeated verses would tie with their twin
    same = TokenizedCorpus.from_lists([english.sentence(i) for i in rows])
    size = int(english.ids.max()) + 1
    twins = LanguageSet.concatenate(["en", "xx"], [size, size])
    evaluator = _evaluator(twins, 2 * size)
    embeddings = evaluator.model.bert.embeddings.word_embeddings.weight
    with torch.no_grad():
        embeddings[size:] = embeddings[:size]
    scores = evaluator.retrieval_by_language(TokenizedCorpus.concatenate([same, same]), [0, 2])
    assert scores["retrieval_p1/L2/xx"] == scores["retrieval_p1/L0/xx"] == 1.0
    assert scores["retrieval_p1_en2x/L2/xx"] == scores["retrieval_p10_x2en/L2/xx"] == 1.0
    assert scores["retrieval_p1/L2"] == scores["retrieval_p1/L2/xx"]  # the mean of one language
    shuffled = np.random.default_rng(0).permutation(len(rows))
    other = TokenizedCorpus.from_lists([same.sentence(int(i)) for i in shuffled])
    scores = evaluator.retrieval_by_language(TokenizedCorpus.concatenate([same, other]), [2])
    n = len(rows)
    fixed = int((shuffled == np.arange(n)).sum())  # verses the shuffle left in place
    assert scores["retrieval_p1/L2/xx"] == pytest.approx(fixed / n)
    assert scores["retrieval_p10/L2/xx"] < 0.25 and n > 100


def test_identically_spelled_tokens_are_the_weak_gold() -> None:
    specials = [f"[{i}]" for i in range(NUM_SPECIAL)]
    a = [*specials, "Abraham", "und", "7", "Haus"]
    b = [*specials, "7", "Abraham", "house", "Haus"]
    offsets = [0, len(a)]
    table = torch.arange(len(a) + len(b)).view(-1, 1, 1).repeat(1, 2, 1)
    # a's Abraham → b's Abraham (right), 7 → house (wrong), Haus → Haus (right), und → 7.
    for local, neighbour in ((5, 6), (6, 5), (7, 7), (8, 8)):
        table[local, 1, 0] = offsets[1] + neighbour
    # b → a: 7 → 7, Abraham → Abraham, house → Haus, Haus → Haus: all three right.
    for local, neighbour in ((5, 7), (6, 5), (7, 8), (8, 8)):
        table[offsets[1] + local, 0, 0] = neighbour
    assert crosslingual.identical_spelling_precision(table, [a, b], offsets, 0, 1,
                                                     NUM_SPECIAL) == (pytest.approx(2 / 3), 3)
    counts = [np.array([0] * NUM_SPECIAL + [5, 9, 1, 2]), np.ones(len(b))]
    report = crosslingual.weak_gold_report(table, [a, b], offsets, ["de", "en"], counts,
                                           NUM_SPECIAL, samples=2)
    assert report["knn_weak_p1/de-en"] == pytest.approx(2 / 3)
    assert report["knn_weak_p1/en-de"] == 1.0 and report["knn_weak_pairs/en-de"] == 3
    assert report["samples"]["de-en"] == [["und", ["7"]], ["Abraham", ["Abraham"]]]


@pytest.fixture(scope="module")
def bible_run(mlflow_server: str) -> str:
    with on_server(mlflow_server, "fixtures-bible"):
        return prepare_step.get_or_run(BIBLE)


def test_real_track_end_to_end(tracking: str, bible_run: str,
                               capsys: pytest.CaptureFixture[str]) -> None:
    """prepare → pretrain 3-base evaluated every 2 steps → evaluate at more layers →
    kendall-tau of the checkpoint on the Bibles' test verses."""
    run_id = pretrain("3-base", {"size": "small", "max_steps": 4, "batch_size": 8,
                                 "checkpoint_every": 2}, bible_run, eval_every=2)
    client = MlflowClient()
    history = {m.step: m.value for m in client.get_metric_history(run_id, "L8/retrieval_p1/de")}
    assert sorted(history) == [2, 4] and all(0 <= v <= 1 for v in history.values())
    final = client.get_run(run_id).data.metrics
    for lang in ("de", "hi"):
        assert {f"L0/retrieval_p1/{lang}", f"L8/retrieval_p5_en2x/{lang}",
                f"L8/retrieval_p10_x2en/{lang}"} <= set(final)
    # The mean over languages is the real track's counterpart of Table 1's ρ at layer 8.
    assert final[tracking_lib.retrieval_p1(8)] == pytest.approx(
        (final["L8/retrieval_p1/de"] + final["L8/retrieval_p1/hi"]) / 2)
    assert final[tracking_lib.PPL_DEV] > 1 and tracking_lib.MULT_SCORE not in final
    assert "L8 retr" in capsys.readouterr().out

    run_command(evaluate_entry.command, ["--run-id", run_id, "--layers", "0,4,12",
                                         "--dev-sentences", "50"])
    report = json.loads(Path(tracking_lib.download(run_id, "evaluation/step-4.json"))
                        .read_text())
    assert report["dev_sentences"] == 150  # 50 verses of each language
    assert "retrieval_p1/L12/hi" in report["scores"]
    assert client.get_metric_history(run_id, "L12/retrieval_p1/hi")[0].step == 4

    model = tracking_lib.download(run_id, "model")
    run_command(kendall_entry.command, ["--model", str(model), "--data", "bible",
                                        "--languages", "de,hi", "--sentences", "12",
                                        "--accuracies", "paper"])
    (tau,) = client.search_runs([mlflow.get_experiment_by_name(tracking).experiment_id],
                                "tags.step = 'kendall-tau'")
    assert {"kendall_tau/de", "kendall_tau/hi"} <= set(tau.data.metrics)
    assert tau.data.metrics["kendall_tau_sentences/de"] \
        + tau.data.metrics["kendall_tau_skipped/de"] == 12
    pairs = json.loads(Path(tracking_lib.download(tau.info.run_id, "scores/hi.json"))
                       .read_text())
    _, texts = bibles.parallel({"en": "4", "de": "e", "hi": "i"}, "test")
    assert [p["hi"] for p in pairs] == texts["hi"][:12]


def test_bad_inputs_of_the_bibles(tracking: str, capsys: pytest.CaptureFixture[str]) -> None:
    def bad(command, args: list[str]) -> str:
        return refused(command, args, capsys)

    assert "no Bible for language(s) xx; the embedded Bibles have en, de" in bad(
        prepare_entry.command, ["--languages", "en,xx"])
    assert "no edition 'w' of de; de has e (Elberfelder 1932), s (Schlachter 1951)" in bad(
        prepare_entry.command, ["--languages", "en,de", "--editions", "de:w"])
    assert "two or more distinct ISO 639 codes" in bad(prepare_entry.command,
                                                       ["--languages", "de"])
    # Nothing half-written: no prepare run exists.
    experiment = mlflow.get_experiment_by_name(tracking)
    assert experiment is None or not MlflowClient().search_runs([experiment.experiment_id])


def test_prepare_prints_each_languages_words_and_types(bible_prepared: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    stats = json.loads((bible_prepared / "stats.json").read_text())
    prepare_entry.print_stats(stats)
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("train de "))
    de = stats["train"]["de"]
    assert re.search(rf"\b{de['words']:,} words +{de['word_types']:,} word types", line)
    assert f"median {de['median_verse_words']:g} words/verse" in line
