"""Parallel sentence loaders on small fixtures in the real formats; bad input is one clear line."""

import shutil
from pathlib import Path

import pytest

from minimult_ml.parallel import load_parallel

FIXTURES = Path(__file__).parent / "fixtures"
XNLI_TSV = FIXTURES / "xnli" / "xnli.dev.tsv"
PARALLEL_DIR = FIXTURES / "parallel"


def one_line_error(spec, languages, sentences=100, match=None):
    with pytest.raises(ValueError, match=match) as err:
        load_parallel(spec, languages, sentences)
    message = str(err.value)
    assert "\n" not in message
    return message


# --- xnli.dev.tsv -----------------------------------------------------------------------------

def test_xnli_tsv_groups_rows_by_pair_id():
    out = load_parallel(f"xnli-tsv:{XNLI_TSV}", ["de"], 100)
    assert list(out) == ["en", "de"]
    # pairs 1 and 2 share their premise, which is taken once
    assert out["en"] == [
        '"Well," he said, "I was home."',  # quotes survive: the TSV does not quote fields
        "He came back home late.",
        "He did not say a word.",
        "The office opens at nine every day.",
        "The office opens in the morning.",
    ]
    assert out["de"][0] == '"Nun," sagte er, "ich war zu Hause."'
    assert out["de"][3] == "Das Büro öffnet jeden Tag um neun."


def test_xnli_tsv_keeps_only_pairs_with_every_language_and_limits_sentences():
    out = load_parallel(f"xnli-tsv:{XNLI_TSV}", ["de", "fr"], 100)
    assert list(out) == ["en", "de", "fr"]
    assert len(out["en"]) == len(out["de"]) == len(out["fr"]) == 3  # pair 3 has no French
    assert out["fr"][2] == "Il n'a pas dit un mot."
    two = load_parallel(f"xnli-tsv:{XNLI_TSV}", ["de"], 2)
    assert two == {"en": out["en"][:2], "de": out["de"][:2]}


def test_english_may_be_asked_for_explicitly():
    out = load_parallel(f"xnli-tsv:{XNLI_TSV}", ["en", "de"], 100)
    assert list(out) == ["en", "de"]


def test_xnli_tsv_bad_inputs(tmp_path):
    missing = tmp_path / "nope.tsv"
    assert str(missing) in one_line_error(f"xnli-tsv:{missing}", ["de"])
    assert "zh" in one_line_error(f"xnli-tsv:{XNLI_TSV}", ["zh"], match="de, en, fr")
    wrong = tmp_path / "wrong.tsv"
    wrong.write_text("lang\tsentence1\tsentence2\nen\ta\tb\n")
    assert "pairID" in one_line_error(f"xnli-tsv:{wrong}", ["de"], match=str(wrong))
    header_only = tmp_path / "header.tsv"
    header_only.write_text(XNLI_TSV.read_text(encoding="utf-8").splitlines()[0] + "\n")
    one_line_error(f"xnli-tsv:{header_only}", ["de"], match="no rows")
    latin1 = tmp_path / "latin1.tsv"
    latin1.write_bytes(XNLI_TSV.read_text(encoding="utf-8").encode("latin-1", "replace"))
    one_line_error(f"xnli-tsv:{latin1}", ["de"], match="UTF-8")


# --- DIR/<lang>.txt ---------------------------------------------------------------------------

def test_dir_is_line_parallel():
    out = load_parallel(f"dir:{PARALLEL_DIR}", ["de"], 100)
    assert list(out) == ["en", "de"]
    assert len(out["en"]) == len(out["de"]) == 4
    assert out["en"][0] == "The cat sleeps on the mat."
    assert out["de"][0] == "Die Katze schläft auf der Matte."
    assert load_parallel(f"dir:{PARALLEL_DIR}", ["de"], 3)["de"] == out["de"][:3]


def test_dir_bad_inputs(tmp_path):
    assert "nowhere" in one_line_error(f"dir:{tmp_path / 'nowhere'}", ["de"])
    one_line_error(f"dir:{PARALLEL_DIR}", ["fr"], match="fr")

    folder = tmp_path / "corpus"
    shutil.copytree(PARALLEL_DIR, folder)
    with (folder / "de.txt").open("a", encoding="utf-8") as f:
        f.write("Eine Zeile zu viel.\n")
    message = one_line_error(f"dir:{folder}", ["de"], match="line-parallel")
    assert str(folder / "de.txt") in message and str(folder / "en.txt") in message

    (folder / "en.txt").write_text("")
    (folder / "de.txt").write_text("")
    one_line_error(f"dir:{folder}", ["de"], match="empty")

    (folder / "de.txt").unlink()
    (folder / "de.txt").mkdir()  # a folder where a file should be: unreadable as text
    message = one_line_error(f"dir:{folder}", ["de"], match="cannot be read")
    assert str(folder / "de.txt") in message

    (folder / "de.txt").rmdir()
    (folder / "en.txt").unlink()
    one_line_error(f"dir:{folder}", ["de"], match="en, de")


# --- the spec itself --------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["xnli", "hub:x", "dir:", "xnli-tsv:", "tsv:foo"])
def test_unknown_spec(spec):
    one_line_error(spec, ["de"], match="hub, xnli-tsv:PATH")


def test_sentences_must_be_positive():
    one_line_error(f"dir:{PARALLEL_DIR}", ["de"], sentences=0, match="positive")


def test_hub_rejects_unknown_languages_before_any_download():
    one_line_error("hub", ["xx"], match="facebook/xnli")


# --- the hub, without the network -------------------------------------------------------------

def fake_xnli_dev():
    """Two rows in the hub's `all_languages` features, decoded as `load_dataset` returns them."""
    from datasets import ClassLabel, Dataset, Features, Translation, TranslationVariableLanguages

    langs = ["de", "en", "fr"]
    features = Features({
        "premise": Translation(languages=langs),
        "hypothesis": TranslationVariableLanguages(languages=langs),
        "label": ClassLabel(names=["entailment", "neutral", "contradiction"]),
    })
    premise = {"de": "Er kam nach Hause.", "en": "He came home.", "fr": "Il est rentré."}
    return Dataset.from_dict({
        "premise": [premise, premise],
        "hypothesis": [{"de": "Er schlief.", "en": "He slept.", "fr": "Il a dormi."},
                       {"de": "Er aß.", "en": "He ate.", "fr": "Il a mangé."}],
        "label": [0, 2],
    }, features=features)


def test_hub_reads_the_all_languages_format(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(*args, **kwargs):
        calls.append((args, kwargs))
        return fake_xnli_dev()

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    out = load_parallel("hub", ["fr"], 100)
    assert calls == [(("facebook/xnli", "all_languages"), {"split": "validation"})]
    assert out == {"en": ["He came home.", "He slept.", "He ate."],
                   "fr": ["Il est rentré.", "Il a dormi.", "Il a mangé."]}


def test_hub_failure_is_one_clear_line(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach the hub\nsecond line of detail")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    message = one_line_error("hub", ["de"], match="xnli-tsv:PATH")
    assert "ConnectionError: Couldn't reach the hub" in message
