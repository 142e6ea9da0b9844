"""Parallel sentences English ↔ other languages, for the word-order study (paper App. B.2).

Every loader returns {lang: sentences}, "en" first, all lists line-parallel: line i of every
language translates line i of English. Sources, chosen by a spec string:

  hub            XNLI dev from the Hugging Face hub (`facebook/xnli`, config `all_languages`)
  xnli-tsv:PATH  XNLI-1.0's `xnli.dev.tsv` (one row per language and pair, grouped by pairID)
  dir:PATH       PATH/<lang>.txt, one sentence per line, line-parallel with PATH/en.txt
  bible          the embedded Bibles' test verses (never seen in pretraining on them) that every
                 language has, each language in its default edition; bible:de:s,en:k picks
                 other editions, and `split_seed` the chapter split (a model's own: see
                 `steps.kendall_tau.bible_of_model`)

XNLI pairs give two sentences each: the premise, then the hypothesis. Each premise is shared by
three pairs; it is taken once, so that it does not count three times in a language's mean.
Bad input raises ValueError with one line naming the input and what to do.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from minimult_ml import bibles
from minimult_ml.errors import InputError, reading
from minimult_ml.hub import hub_errors

XNLI_LANGUAGES = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur",
                  "vi", "zh")
TSV_COLUMNS = ("language", "pairID", "sentence1", "sentence2")

Pair = dict[str, tuple[str, str]]  # language → (premise, hypothesis) of one XNLI pair


def load_parallel(spec: str, languages: list[str], sentences: int,
                  split_seed: int = bibles.SPLIT_SEED) -> dict[str, list[str]]:
    """The first `sentences` parallel sentences of "en" and each of `languages` from `spec`
    (for the Bibles: of the test chapters of the split that `split_seed` draws)."""
    if sentences < 1:
        raise InputError(f"sentences must be a positive number, got {sentences}")
    langs = list(dict.fromkeys(["en", *languages]))  # "en" first, no duplicates
    kind, _, path = spec.partition(":")
    if kind == "hub" and not path:
        return load_xnli_hub(langs, sentences)
    if kind == "xnli-tsv" and path:
        return load_xnli_tsv(path, langs, sentences)
    if kind == "dir" and path:
        return load_dir(path, langs, sentences)
    if kind == "bible":
        return load_bible(langs, sentences, path, split_seed)
    raise InputError(f"unknown data {spec!r}: use hub, xnli-tsv:PATH (XNLI-1.0 xnli.dev.tsv), "
                     f"dir:PATH (PATH/<lang>.txt line-parallel with PATH/en.txt) or bible")


def load_bible(languages: list[str], sentences: int, editions: str = "",
               split_seed: int = bibles.SPLIT_SEED) -> dict[str, list[str]]:
    """The first `sentences` test verses that every language's edition has."""
    _, texts = bibles.parallel(bibles.editions_for(languages, editions), "test", split_seed)
    return {lang: lines[:sentences] for lang, lines in texts.items()}


def load_xnli_hub(languages: list[str], sentences: int) -> dict[str, list[str]]:
    """XNLI dev (2,490 pairs) from the hub; needs network or a warm Hugging Face cache."""
    _check_languages(languages, XNLI_LANGUAGES, "XNLI on the hub (facebook/xnli)")
    import datasets  # slow to import; only this source needs it

    with hub_errors("facebook/xnli from the Hugging Face hub",
                    "check the network, or pass data=xnli-tsv:PATH or data=dir:PATH"):
        rows = datasets.load_dataset("facebook/xnli", "all_languages", split="validation")
    pairs = (_hub_pair(row["premise"], row["hypothesis"], languages) for row in rows)
    return _sentences_from_pairs(pairs, languages, sentences, "facebook/xnli")


def _hub_pair(premise: dict, hypothesis: dict, languages: list[str]) -> Pair:
    # `premise` is a Translation: {lang: text}. `hypothesis` is a TranslationVariableLanguages,
    # which the hub stores as {"language": [...], "translation": [...]}; accept both shapes.
    if set(hypothesis) == {"language", "translation"}:
        hypothesis = dict(zip(hypothesis["language"], hypothesis["translation"], strict=True))
    return {lang: (premise[lang], hypothesis[lang]) for lang in languages}


def read_tsv(path: Path, columns: tuple[str, ...], expected: str) -> list[dict[str, str]]:
    """The rows of an XNLI-style TSV file with a header row that has `columns`."""
    if not path.is_file():
        raise InputError(f"no file at {path}: pass the path of {expected}")
    with reading(path), path.open(encoding="utf-8-sig", newline="") as f:
        # The sentences contain quotes; XNLI's TSVs do not use them as field delimiters.
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"{path} lacks the column(s) {', '.join(missing)} in its header "
                             f"row: expected {expected}")
        rows = list(reader)
    if not rows:
        raise InputError(f"{path} has no rows: pass {expected}")
    return rows


def load_xnli_tsv(path: str | Path, languages: list[str], sentences: int) -> dict[str, list[str]]:
    """XNLI-1.0 `xnli.dev.tsv` (or `xnli.test.tsv`): rows of one pairID are translations."""
    path = Path(path)
    pairs: dict[str, Pair] = {}  # insertion-ordered: pairs come out in file order
    for row in read_tsv(path, TSV_COLUMNS, "XNLI-1.0's xnli.dev.tsv"):
        pairs.setdefault(row["pairID"], {})[row["language"]] = (row["sentence1"],
                                                                row["sentence2"])
    present = sorted({lang for pair in pairs.values() for lang in pair})
    _check_languages(languages, present, str(path))
    # A pair that lacks one of the requested languages cannot be parallel across all of them.
    complete = (pair for pair in pairs.values() if all(lang in pair for lang in languages))
    return _sentences_from_pairs(complete, languages, sentences, str(path))


def load_dir(folder: str | Path, languages: list[str], sentences: int) -> dict[str, list[str]]:
    """FOLDER/<lang>.txt, one sentence per line, each line-parallel with FOLDER/en.txt."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"no folder at {folder}: pass dir:PATH with PATH/en.txt and "
                         f"PATH/<lang>.txt files")
    present = sorted(p.stem for p in folder.glob("*.txt"))
    _check_languages(languages, present, f"{folder} (expects <lang>.txt files)")
    lines = {lang: _read_lines(folder / f"{lang}.txt") for lang in languages}
    english = folder / "en.txt"
    if not lines["en"]:
        raise InputError(f"{english} is empty: it needs one English sentence per line")
    for lang in languages:
        if len(lines[lang]) != len(lines["en"]):
            raise InputError(f"{folder / f'{lang}.txt'} has {len(lines[lang])} lines but "
                             f"{english} has {len(lines['en'])}: the files must be line-parallel")
    return {lang: lines[lang][:sentences] for lang in languages}


def _read_lines(path: Path) -> list[str]:
    with reading(path):
        return [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]


def _check_languages(languages: list[str], present: Iterable[str], source: str) -> None:
    have = list(present)
    missing = [lang for lang in languages if lang not in have]
    if missing:
        raise InputError(f"language(s) {', '.join(missing)} not in {source}; it has "
                         f"{', '.join(have) or 'none'}")


def _sentences_from_pairs(pairs: Iterable[Pair], languages: list[str], sentences: int,
                          source: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {lang: [] for lang in languages}
    seen: set[tuple[str, ...]] = set()
    for pair in pairs:
        for part in (0, 1):  # premise, then hypothesis
            line = tuple(pair[lang][part].strip() for lang in languages)
            if line in seen:
                continue
            seen.add(line)
            for lang, text in zip(languages, line, strict=True):
                out[lang].append(text)
            if len(out["en"]) == sentences:
                return out
    if not out["en"]:
        raise InputError(f"{source} has no pair with all of {', '.join(languages)}")
    return out
