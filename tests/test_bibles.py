"""The embedded Bibles, read from the installed packages: every cleaning rule on the verses that
need it, the chapter split, parallel sets without the verses a language lacks, statistics, the
Bible in Basic English as a lab source, and the bad inputs."""

from __future__ import annotations

import re

import pytest

from minimult_ml import bibles, corpus
from minimult_ml.errors import InputError

JOHN, PSALMS, ROMANS = 43, 19, 45


def test_every_edition_is_on_the_king_james_grid() -> None:
    king_james = bibles.raw_verses("k", [PSALMS])
    for edition in ("s", "i", "t", "c", "y", bibles.CHICHEWA):
        assert set(bibles.raw_verses(edition, [PSALMS])) == set(king_james), edition
    assert len(king_james) == 2461  # the Psalms of the King James Version


def test_inline_verse_numbers_go() -> None:
    """Schlachter, Russian, Japanese: "(24:14)"; Indonesian, Ukrainian: "(13-5)"."""
    for edition, key in (("s", (9, 24, 13)), ("r", (19, 31, 14)), ("j", (19, 24, 10)),
                         ("6", (19, 13, 4)), ("8", (9, 24, 12))):
        raw = bibles.raw_verses(edition, [key[0]])[key]
        assert re.match(r"\(\d+[:\-]\d+\) ", raw), raw
        assert bibles.clean_verse(raw, edition, key) == raw.split(") ", 1)[1].strip()
    raw = bibles.raw_verses("s", [PSALMS])
    marked = [k for k, t in raw.items() if re.search(r"\(\d+:\d+\)", t)]
    assert len(marked) > 100
    assert not any(re.search(r"\(\d+:\d+\)", bibles.clean_verse(raw[k], "s", k)) for k in marked)


def test_psalm_titles_leave_verse_one() -> None:
    key = (PSALMS, 3, 1)
    assert bibles.verses("s", [PSALMS])[key].startswith("Ach, HERR, wie zahlreich")  # marked
    assert bibles.verses("e", [PSALMS])[key].startswith("Jehova! wie viele")  # parenthesised
    assert bibles.verses("l", [PSALMS])[key].startswith("O Éternel, que mes ennemis")
    assert bibles.verses("r", [PSALMS])[(PSALMS, 51, 1)].startswith("Помилуй меня, Боже")
    assert bibles.verses("k", [PSALMS])[key].startswith("LORD, how are they increased")
    # Titles with nothing that marks the verse's start: verse 1 of every psalm is dropped.
    basic = bibles.verses("3", [PSALMS])
    assert "A Psalm. Of David" in bibles.raw_verses("3", [PSALMS])[key]
    assert not any(v == 1 for _, _, v in basic) and (PSALMS, 3, 2) in basic


def test_hindi_cross_references_and_footnote_marks_go() -> None:
    raw = bibles.raw_verses("i", [JOHN, ROMANS])
    referenced = [k for k, t in raw.items() if re.search(r"\([^()]*\d+:\d+[^()]*\)?\s*$", t)]
    assert len(referenced) > 40
    for key in referenced:
        clean = bibles.clean_verse(raw[key], "i", key)
        assert not re.search(r"\d+:\d+", clean) and "*" not in clean, clean
        assert clean and raw[key].replace("*", "").startswith(clean[:20])
    key = (45, 3, 4)
    assert raw[key].endswith("तू जय पाए।” (भज. 51:4, भज. 116:11)")
    assert bibles.clean_verse(raw[key], "i", key).endswith("तू जय पाए।”")


def test_placeholders_of_merged_verses_are_no_verses() -> None:
    for edition, placeholder in (("t", "(aynı)"), ("b", "-"), ("j", "［本節欠如］")):
        raw = bibles.raw_verses(edition, range(40, 67))
        empty = [k for k, t in raw.items() if t.strip() == placeholder]
        assert empty, edition
        kept = bibles.verses(edition, range(40, 67))
        assert not set(empty) & set(kept) and len(kept) == len(raw) - len(empty)


def test_parallel_sets_drop_what_any_language_lacks() -> None:
    books = range(40, 67)
    turkish = set(bibles.verses("t", books))
    keys, texts = bibles.parallel({"en": "4", "tr": "t"}, "train", books=books)
    assert set(keys) == {k for k in bibles.verses("4", books)
                         if k in turkish and bibles.split_of(k) == "train"}
    assert len(keys) < len([k for k in bibles.verses("4", books) if bibles.split_of(k) == "train"])
    english = bibles.verses("4", books)
    assert texts["en"] == [english[k] for k in keys] and len(texts["tr"]) == len(keys)


def test_chinese_loses_the_spaces_after_punctuation_and_before_god() -> None:
    key = (JOHN, 3, 16)
    raw = bibles.raw_verses("c", [JOHN])[key]
    assert "， " in raw and " 神" in raw
    assert bibles.verses("c", [JOHN])[key] == ("“神爱世人，甚至把他的独生子赐给他们，"
                                              "叫一切信他的，不至灭亡，反得永生。")


def test_glued_poetry_lines_get_their_space_and_apostrophes_their_letter() -> None:
    key = (PSALMS, 3, 1)
    assert "ine!Akundiukira" in bibles.raw_verses(bibles.CHICHEWA, [PSALMS])[key]
    assert "ine! Akundiukira" in bibles.verses(bibles.CHICHEWA, [PSALMS])[key]
    web = bibles.verses("4", [24])[(24, 51, 3)]  # "don`t you spare her young men"; [him who]
    assert "don't you spare" in web and "[" not in web and web.startswith("Against him who bends")


def test_the_chapter_split_is_one_for_every_language_and_disjoint() -> None:
    books = range(40, 67)
    by_split = {lang: {s: set(bibles.split_verses(ed, s, books=books)) for s in bibles.SPLITS}
                for lang, ed in (("en", "4"), ("de", "e"), ("hi", "i"))}
    for lang, splits in by_split.items():
        chapters = {s: {k[:2] for k in keys} for s, keys in splits.items()}
        assert not chapters["train"] & chapters["dev"]
        assert not chapters["train"] & chapters["test"] and not chapters["dev"] & chapters["test"]
        assert chapters == {s: {k[:2] for k in by_split["en"][s]} for s in bibles.SPLITS}, lang
        assert all(chapters[s] for s in bibles.SPLITS)
    # A split is a function of (book, chapter) and the seed alone.
    assert bibles.split_of((1, 1, 1)) == bibles.split_of((1, 1, 31))
    assert {bibles.split_of((b, c, 1), seed=1) for b in range(1, 67) for c in range(1, 5)} \
        == set(bibles.SPLITS)
    every = [bibles.split_of((b, c, 1)) for b in range(1, 67) for c in range(1, 30)]
    assert 0.02 < every.count("dev") / len(every) < 0.08


def test_statistics_count_words_of_every_script() -> None:
    hindi = bibles.statistics(["हे यहोवा मेरे सतानेवाले कितने बढ़ गए हैं!"], "hi")
    assert hindi["words"] == 8 and hindi["word_types"] == 8  # vowel signs stay in their word
    chinese = bibles.statistics(["神爱世人，甚至"], "zh")
    assert chinese["words"] == 6 and chinese["characters"] == 7
    english = bibles.statistics(["a b a", "don't stop"], "en")
    assert english == {"verses": 2, "words": 5, "word_types": 4, "characters": 9,
                       "median_verse_words": 2.5}


def test_basic_english_is_a_lab_source() -> None:
    train = corpus.load_source("bible:3", "train")
    assert train[0].startswith("The book of the generations of Jesus Christ")
    assert len(train) == len(bibles.verses("3", range(40, 67)))
    assert corpus.load_source("bible:3", "dev")[0].startswith("At the first God made")


def test_bad_editions_and_languages_name_what_exists() -> None:
    with pytest.raises(InputError, match=r"no Bible for language\(s\) xx; .*en, de"):
        bibles.editions_for(["en", "xx"])
    with pytest.raises(InputError, match=r"no edition 'q' of de; de has e \(Elberfelder"):
        bibles.editions_for(["en", "de"], "de:q")
    with pytest.raises(InputError, match=r"'fr' is not one of the languages en,de"):
        bibles.editions_for(["en", "de"], "fr:l")
    assert bibles.editions_for(["en", "de"], "de:s") == {"en": "4", "de": "s"}
    with pytest.raises(InputError, match=r"bible:q: the lab reads English; use bible:k"):
        corpus.load_source("bible:q", "train")


def test_an_edition_that_is_nearly_all_placeholders_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A damaged install: the real Turkish Psalms with nine verses in ten turned into the
    edition's placeholder."""
    real = bibles.raw_verses("t", [PSALMS])
    damaged = {k: "(aynı)" if i % 10 else t for i, (k, t) in enumerate(real.items())}
    monkeypatch.setattr(bibles, "raw_verses", lambda edition, books=bibles.BOOKS: damaged)
    bibles._cleaned.cache_clear()
    try:
        with pytest.raises(InputError, match=r"edition t \(New Turkish Bible 2001\) has text in "
                                             r"only 246 verses; choose another edition of tr"):
            bibles.verses("t", [PSALMS])
    finally:
        bibles._cleaned.cache_clear()
