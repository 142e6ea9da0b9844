"""The Bibles' transfer task, the offline stand-in for XNLI: a verse's division of the canon.

A verse's label is the traditional division its book belongs to — Law, History, Poetry and
Wisdom, Major Prophets, Minor Prophets, Gospels and Acts, Epistles, Revelation — so it is read
off the verse key and is the same in every language. Fine-tuning uses the train chapters of the
fine-tuning language, model selection its dev chapters, and every language is tested on the
test chapters that all of them have (the Bibles' chapter split, `bibles.split_of`, with the
pretrain data's seed): no test verse, nor any translation of it, is seen in pretraining or in
fine-tuning.
"""

from __future__ import annotations

import bisect

import numpy as np

from minimult_ml import bibles
from minimult_ml.transfer import Examples

DIVISIONS = ("Law", "History", "Poetry and Wisdom", "Major Prophets", "Minor Prophets",
             "Gospels and Acts", "Epistles", "Revelation")
# The first book of each division: Genesis, Joshua, Job, Isaiah, Hosea, Matthew, Romans,
# Revelation (books numbered 1–66 in the Protestant canon's order, as on the King James grid).
FIRST_BOOKS = (1, 6, 18, 23, 28, 40, 45, 66)


def division(book: int) -> int:
    """The index in DIVISIONS of book 1–66's division."""
    if not 1 <= book <= 66:
        raise ValueError(f"book must be 1–66, got {book}")
    return bisect.bisect_right(FIRST_BOOKS, book) - 1


def examples(keys: list[bibles.VerseKey], texts: list[str]) -> Examples:
    """Verses labelled with their division."""
    return Examples(list(texts), np.array([division(k[0]) for k in keys], dtype=np.int64))


def split_examples(edition: str, split: str, seed: int) -> Examples:
    """An edition's verses of the train or dev chapters, labelled."""
    verses = bibles.split_verses(edition, split, seed)
    return examples(list(verses), list(verses.values()))


def test_sets(editions: dict[str, str], seed: int) -> tuple[list[bibles.VerseKey],
                                                           dict[str, Examples]]:
    """The test verses that every edition of `editions` ({language: edition}) has, in the same
    order in every language, labelled; and their keys."""
    keys, texts = bibles.parallel(editions, "test", seed)
    return keys, {lang: examples(keys, t) for lang, t in texts.items()}
