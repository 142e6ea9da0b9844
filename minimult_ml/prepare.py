"""The `prepare` step: corpus → clean sentences → vocabularies → token ids → statistics.

Two kinds of data, one layout. The lab (`languages=en,fake-en`, paper §2.1) has one English
corpus that Fake-English shares. The real track (`languages=en,de,hi`, paper §5.1) reads each
language from the embedded verse-aligned Bibles (`source=bible`, the offline default: train,
dev and test chapters identical for every language, dev and test verses parallel across all of
them) or samples its documents from Wikipedia or text files and holds out its last
`dev_sentences` sentences; each language trains its own WordPiece vocabulary, and the token ids
of all languages are concatenated, each sentence tagged with its language. Everything is written
into one folder, which becomes the prepare run's artifacts:

  data/train.npz, data/dev.npz      token ids (TokenizedCorpus; local ids of each language)
  data/test.npz                     the Bibles' test verses (parallel, like dev)
  data/dev.txt                      the dev sentences, one per line (in the order of dev.npz)
  data/verses.json                  the Bibles: the (book, chapter, verse) of the dev and test
                                    rows of each language (the same for every language)
  data/train.txt                    the lab's training sentences (the real track's gigabytes of
                                    training text stay in the datasets cache, not in the run)
  tokenizer/                        the merged Hugging Face tokenizer, the language set, and
                                    each language's own tokenizer (vocab.Tokenizers)
  stats.json                        the corpus figures of paper §2.1 (lab) or per language
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerFast

from minimult_ml import bibles, corpus, vocab
from minimult_ml.data import TokenizedCorpus
from minimult_ml.errors import InputError, check_seed
from minimult_ml.languages import NUM_SPECIAL, LanguageSet

LAB_LANGUAGES = "en,fake-en"
VERSES_FILE = "verses.json"
BIBLE_VOCAB_SIZE = 5_000
# Any natural language's characters alone exceed this; fewer tokens mean the text is not text
# (masking would have almost nothing to draw random replacements from).
MIN_TOKENS = 20


@dataclass(frozen=True)
class PrepareConfig:
    languages: str = LAB_LANGUAGES  # the lab, or real languages' ISO codes: "en,de,hi"
    source: str = "bible"
    dev_source: str = "bible"  # the lab's dev text; the real track holds out its own
    vocab_size: int = 2048  # per language
    dev_sentences: int = 10_000  # per language
    train_sentences: int = 0  # 0 = all (per language)
    bytes_per_language: int = 1_000_000_000  # real track: the sample of each language's text
    seed: int = 0  # real track: which Wikipedia articles are sampled; the Bibles' chapter split
    editions: str = ""  # real track from the Bibles: each language's edition, "en:4,de:e,hi:i"

    @classmethod
    def real(cls, **overrides: object) -> PrepareConfig:
        """The real track (§5.1): en, de, hi from the embedded Bibles with 5,000 WordPieces
        each (a Bible has 14k–60k word types); from Wikipedia (source=wikipedia), as in the
        paper, 20k WordPieces and 5,000 dev sentences held out."""
        wikipedia = str(overrides.get("source", "bible")) != "bible"
        config = cls(**({"languages": "en,de,hi", "source": "bible",
                         "vocab_size": 20_000 if wikipedia else BIBLE_VOCAB_SIZE,
                         "dev_sentences": 5_000} | overrides))
        if wikipedia:
            return config
        # Every language's edition is a parameter of the run, defaults included.
        chosen = bibles.editions_for(config.codes, config.editions)
        return dataclasses.replace(config, editions=",".join(f"{c}:{e}"
                                                             for c, e in chosen.items()))

    @classmethod
    def of(cls, languages: str = LAB_LANGUAGES, **given: object) -> PrepareConfig:
        """The defaults of the track `languages` belong to, then the given values (None: the
        default)."""
        given = {k: v for k, v in given.items() if v is not None}
        if cls(languages=languages).is_lab:
            return dataclasses.replace(cls(), **given)
        cls(languages=languages).validate()  # two or more languages before their editions
        return cls.real(languages=languages, **given)

    @property
    def codes(self) -> list[str]:
        return [c.strip() for c in self.languages.split(",") if c.strip()]

    @property
    def is_lab(self) -> bool:
        return self.codes == LAB_LANGUAGES.split(",")

    def validate(self) -> None:
        check_seed(self.seed)
        if self.vocab_size <= 0:
            raise InputError(f"vocab_size must be positive, got {self.vocab_size}")
        if self.dev_sentences <= 0:
            raise InputError(f"dev_sentences must be positive, got {self.dev_sentences}")
        if self.train_sentences < 0:
            raise InputError(f"train_sentences must be ≥ 0 (0 = all), got {self.train_sentences}")
        if self.bytes_per_language <= 0:
            raise InputError(f"bytes_per_language must be positive, "
                             f"got {self.bytes_per_language}")
        codes = self.codes
        if self.is_lab:
            return
        bad = [c for c in codes if not (c.isalpha() and c.isascii() and 2 <= len(c) <= 3
                                        and c.islower())]
        if bad or len(codes) < 2 or len(set(codes)) < len(codes):
            raise InputError(f"languages {self.languages!r}: give {LAB_LANGUAGES} (the lab) or "
                             f"two or more distinct ISO 639 codes like en,de,hi"
                             + (f" ({', '.join(bad)} is not one)" if bad else ""))


def prepare(config: PrepareConfig, out: Path) -> dict:
    """Build everything into `out`; returns the summary that is logged (stats, fingerprints)."""
    config.validate()
    build = (_prepare_lab if config.is_lab else _prepare_bible if config.source == "bible"
             else _prepare_real)
    tokenizers, splits, stats = build(config)
    tokenizers.save(out / "tokenizer")
    (out / "data").mkdir(parents=True)
    if "verse_keys" in stats:
        (out / "data" / VERSES_FILE).write_text(json.dumps(stats.pop("verse_keys")))
    fingerprints = {}
    for name, (ids, text) in splits.items():
        if text is not None:
            (out / "data" / f"{name}.txt").write_text("\n".join(text) + "\n", encoding="utf-8")
        ids.save(out / "data" / f"{name}.npz")
        fingerprints[f"{name}_sha256"] = ids.fingerprint()
    stats |= {"languages": tokenizers.languages.codes,
              "vocab_size": tokenizers.languages.vocab_size,
              "vocab_size_per_language": [lang.size for lang in tokenizers.languages.languages]}
    (out / "stats.json").write_text(json.dumps(stats, indent=2, ensure_ascii=False))
    return {"stats": stats, "fingerprints": fingerprints}


Splits = dict[str, tuple[TokenizedCorpus, list[str] | None]]


def _sentences(spec: str, split: str, limit: int) -> tuple[list[str], str]:
    paragraphs = corpus.load_source(spec, split)
    splitter = corpus.sentence_splitter(paragraphs)
    sents = corpus.sentences(paragraphs, splitter)
    sents = sents[:limit] if limit else sents
    if not sents:
        raise InputError(f"source {spec!r} has no {split} sentences; give a source with text")
    return sents, splitter.kind


def _vocabulary(train: datasets.Dataset, size: int, what: str,
                ) -> tuple[Tokenizer, TokenizedCorpus]:
    """A language's WordPiece vocabulary trained on `train`, in canonical order, and the ids of
    `train` under it."""
    tok = vocab.train_wordpiece((b["text"] for b in train.iter(batch_size=10_000)), size,
                                length=len(train), what=what)
    if tok.get_vocab_size() - NUM_SPECIAL < MIN_TOKENS:
        raise InputError(f"the {what} has too little text: its vocabulary has "
                         f"{tok.get_vocab_size() - NUM_SPECIAL} tokens besides the specials, "
                         f"fewer than {MIN_TOKENS}; give a source with more (real) text")
    ids = vocab.tokenize(tok, train)
    tok, table = vocab.renumber(tok, np.bincount(ids.ids, minlength=tok.get_vocab_size()))
    return tok, ids.mapped(table)


def _prepare_lab(config: PrepareConfig) -> tuple[vocab.Tokenizers, Splits, dict]:
    train, train_splitter = _sentences(config.source, "train", config.train_sentences)
    dev, dev_splitter = _sentences(config.dev_source, "dev", config.dev_sentences)
    english, train_ids = _vocabulary(datasets.Dataset.from_dict({"text": train}),
                                     config.vocab_size, "corpus")
    dev_ids = vocab.tokenize(english, datasets.Dataset.from_dict({"text": dev}))
    stats = {"train": corpus.statistics_of(train), "dev": corpus.statistics_of(dev),
             "sentence_splitter": {"train": train_splitter, "dev": dev_splitter}}
    return vocab.Tokenizers.lab(english), {"train": (train_ids, train), "dev": (dev_ids, dev)}, \
        stats


def _prepare_real(config: PrepareConfig) -> tuple[vocab.Tokenizers, Splits, dict]:
    for code in config.codes:  # every language's files exist before any is read
        corpus.source_files(config.source, code)
    tokenizers, train_parts, dev_parts, dev_text = [], [], [], []
    stats: dict = {"train": {}, "dev": {}, "sentence_splitter": {}}
    for code in config.codes:
        docs = corpus.documents(config.source, code, config.bytes_per_language, config.seed)
        head = [p for doc in docs.select(range(min(len(docs), 20_000)))["text"]
                for p in doc.splitlines()]
        splitter = corpus.sentence_splitter(head, code)
        sents = corpus.split_documents(docs, splitter)
        n_dev = config.dev_sentences
        if len(sents) <= n_dev:
            raise InputError(f"language {code} has {len(sents)} sentences in {config.source}, "
                             f"not more than dev_sentences={n_dev}; give more text or lower "
                             "dev_sentences")
        n_train = len(sents) - n_dev
        train = sents.select(range(min(n_train, config.train_sentences or n_train)))
        dev = sents.select(range(n_train, len(sents)))
        tok, train_ids = _vocabulary(train, config.vocab_size, f"{code} corpus")
        dev_ids = vocab.tokenize(tok, dev)
        tokenizers.append(tok)
        train_parts.append(train_ids)
        dev_parts.append(dev_ids)
        dev_text += dev["text"]
        stats["sentence_splitter"][code] = splitter.kind
        stats["train"][code] = _id_statistics(train_ids) | {"documents": len(docs)}
        stats["dev"][code] = _id_statistics(dev_ids)
    languages = LanguageSet.concatenate(config.codes, [t.get_vocab_size() for t in tokenizers])
    splits = {"train": (TokenizedCorpus.concatenate(train_parts), None),
              "dev": (TokenizedCorpus.concatenate(dev_parts), dev_text)}
    return vocab.Tokenizers.build(languages, tokenizers), splits, stats


def _prepare_bible(config: PrepareConfig) -> tuple[vocab.Tokenizers, Splits, dict]:
    """Each language's edition: its verses of the train chapters for pretraining and its own
    vocabulary; the dev and test verses that every language has, in the same order."""
    editions = bibles.editions_for(config.codes, config.editions)
    held_out = {split: bibles.parallel(editions, split, config.seed) for split in ("dev", "test")}
    held_out["dev"] = (held_out["dev"][0][:config.dev_sentences],
                       {c: t[:config.dev_sentences] for c, t in held_out["dev"][1].items()})
    tokenizers, parts = [], {"train": [], "dev": [], "test": []}
    stats: dict = {"train": {}, "dev": {}, "test": {}, "sentence_splitter": "verses",
                   "editions": editions,
                   "verse_keys": {split: keys for split, (keys, _) in held_out.items()}}
    for code, edition in editions.items():
        train = list(bibles.split_verses(edition, "train", config.seed).values())
        train = train[:config.train_sentences or None]
        tok, ids = _vocabulary(datasets.Dataset.from_dict({"text": train}), config.vocab_size,
                               f"{code} Bible ({edition})")
        texts = {"train": train} | {split: held_out[split][1][code] for split in held_out}
        for split, text in texts.items():
            if split != "train":
                ids = vocab.tokenize(tok, datasets.Dataset.from_dict({"text": text}))
            parts[split].append(ids)
            stats[split][code] = bibles.statistics(text, code) | _id_statistics(ids)
        tokenizers.append(tok)
    languages = LanguageSet.concatenate(config.codes, [t.get_vocab_size() for t in tokenizers])
    splits: Splits = {"train": (TokenizedCorpus.concatenate(parts["train"]), None)}
    for split in held_out:
        splits[split] = (TokenizedCorpus.concatenate(parts[split]),
                         [t for code in config.codes for t in held_out[split][1][code]])
    return vocab.Tokenizers.build(languages, tokenizers), splits, stats


def _id_statistics(ids: TokenizedCorpus) -> dict[str, float]:
    """Sentences and WordPiece tokens ([CLS] and [SEP] not counted): counting words the lab's
    way (NLTK, in Python) would take longer than the rest of preparing a gigabyte."""
    lengths = ids.lengths - 2
    return {"sentences": len(ids), "tokens": int(lengths.sum()),
            "median_sentence_tokens": float(np.median(lengths)) if len(ids) else 0.0}


@dataclass(frozen=True)
class Prepared:
    """A prepare run's artifacts, loaded."""

    train: TokenizedCorpus
    dev: TokenizedCorpus
    tokenizers: vocab.Tokenizers
    folder: Path

    def held_out(self, split: str) -> TokenizedCorpus:
        """dev, or the Bibles' test verses."""
        path = self.folder / "data" / f"{split}.npz"
        if not path.is_file():
            raise InputError(f"the prepared data in {self.folder} have no {split} split; "
                             "prepare the languages from the Bibles (source=bible)")
        return self.dev if split == "dev" else TokenizedCorpus.load(path)

    def verse_keys(self, split: str) -> list[bibles.VerseKey]:
        """The Bibles: (book, chapter, verse) of each row of a language's dev or test part."""
        path = self.folder / "data" / VERSES_FILE
        if not path.is_file():
            raise InputError(f"the prepared data in {self.folder} are not verses; prepare the "
                             "languages from the Bibles (source=bible)")
        return [tuple(k) for k in json.loads(path.read_text())[split]]

    @property
    def tokenizer(self) -> PreTrainedTokenizerFast:
        return self.tokenizers.merged

    @property
    def languages(self) -> LanguageSet:
        return self.tokenizers.languages


def load(folder: Path) -> Prepared:
    return Prepared(TokenizedCorpus.load(folder / "data" / "train.npz"),
                    TokenizedCorpus.load(folder / "data" / "dev.npz"),
                    vocab.Tokenizers.load(folder / "tokenizer"), folder)
