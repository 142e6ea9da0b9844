"""WordPiece vocabularies and the tokenizers of a language set (paper §2.1, Figure 2; DESIGN §4).

Each language has a cased WordPiece vocabulary trained with `tokenizers`; its tokenizer turns the
language's text into local ids. The merged tokenizer names every global id: language k's tokens
are written with its prefix, so the lab's Fake-English — every English token prefixed by "::" —
sits at [V, 2V), and Fake-English text written token by token (`::He ::ate ::wild ::hon ::##e
::##y ::.`) encodes to the English ids plus V. In the lab both languages read English text with the
English tokenizer: Fake-English *is* English with shifted ids.

Saved as one folder: the merged tokenizer at its top (`AutoTokenizer.from_pretrained` loads it),
`language_set.json` beside it, and `languages/<code>/`, each language's own Hugging Face tokenizer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers.trainers import WordPieceTrainer
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from minimult_ml.data import TokenizedCorpus
from minimult_ml.errors import InputError
from minimult_ml.languages import CLS, SEP, SPECIAL_TOKENS, LanguageSet

MAX_LENGTH = 128
LANGUAGES_DIR = "languages"


def _normalizer() -> normalizers.Normalizer:
    # Cased, accents kept (the paper's vocabulary is cased).
    return normalizers.BertNormalizer(lowercase=False, strip_accents=False)


def _with_bert_template(tok: Tokenizer, cls_id: int = CLS, sep_id: int = SEP) -> Tokenizer:
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    tok.decoder = decoders.WordPiece()
    return tok


def _hf(tok: Tokenizer) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, model_max_length=MAX_LENGTH, unk_token="[UNK]", pad_token="[PAD]",
        cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def train_wordpiece(sentences: Iterable[str], vocab_size: int, length: int | None = None,
                    what: str = "corpus") -> Tokenizer:
    """A cased WordPiece tokenizer with the five specials at ids 0–4, truncating to 128.

    Its other ids are in the trainer's order, which breaks ties between equally frequent merges
    in hash order; `renumber` makes them canonical once the corpus is encoded.
    """
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = _normalizer()
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(sentences, WordPieceTrainer(vocab_size=vocab_size,
                                                        special_tokens=list(SPECIAL_TOKENS)),
                            length=length)
    if tok.get_vocab_size() > vocab_size:
        raise InputError(f"vocab_size {vocab_size} is below the {what}'s alphabet "
                         f"({tok.get_vocab_size()} tokens are needed for its characters alone); "
                         "raise vocab_size")
    tok.enable_truncation(MAX_LENGTH)
    return _with_bert_template(tok)


def renumber(tok: Tokenizer, counts: np.ndarray) -> tuple[Tokenizer, np.ndarray]:
    """Canonical ids: the specials, then every other token by corpus frequency (ties by the
    token's string), so the same corpus gives the same ids on every run.

    `counts[i]` is how often id i occurs in the encoded training corpus (`np.bincount` of its
    ids). Returns the renumbered tokenizer and the map old id → new id, for ids encoded before.
    """
    vocab = tok.get_vocab()
    counts = np.pad(counts, (0, max(0, len(vocab) - len(counts))))
    rest = sorted(set(vocab) - set(SPECIAL_TOKENS), key=lambda t: (-counts[vocab[t]], t))
    order = [*SPECIAL_TOKENS, *rest]
    new = Tokenizer(models.WordPiece({t: i for i, t in enumerate(order)}, unk_token="[UNK]"))
    new.normalizer = tok.normalizer
    new.pre_tokenizer = tok.pre_tokenizer
    new.enable_truncation(MAX_LENGTH)
    mapping = np.empty(len(vocab), dtype=np.int64)
    mapping[[vocab[t] for t in order]] = np.arange(len(order))
    return _with_bert_template(new), mapping


def tokenize(tok: Tokenizer, sentences: datasets.Dataset) -> TokenizedCorpus:
    """The token ids of a dataset's "text" column, [CLS] … [SEP], truncated to 128.

    A batched `datasets.map` (Rust tokenization, parallel over each batch; cached for datasets on
    disk), whose Arrow list column already is the flat ids plus offsets of a TokenizedCorpus.
    """
    def encode(batch: dict[str, list[str]]) -> dict[str, list[list[int]]]:
        return {"ids": [e.ids for e in tok.encode_batch(batch["text"])]}

    ids = sentences.map(encode, batched=True, batch_size=10_000, remove_columns=["text"],
                        features=datasets.Features({"ids": datasets.Sequence(
                            datasets.Value("uint16"))}), desc="tokenizing")
    column = ids.data.column("ids").combine_chunks()
    offsets = column.offsets.to_numpy().astype(np.int64)
    flat = column.values.to_numpy()[offsets[0]:offsets[-1]]
    return TokenizedCorpus(flat, offsets - offsets[0])


_PUNCT = r"\p{P}!-/:-@\[-`{-~"


def _merged_pre_tokenizer(prefixes: list[str]) -> pre_tokenizers.PreTokenizer:
    # Bert's pre-tokenizer (split on whitespace, isolate each punctuation character) except that
    # a prefixed token ("::ate", "de::Haus") stays whole, so text written token by token maps
    # one-to-one onto the merged vocabulary.
    prefixed = "|".join(re.escape(p) for p in sorted(prefixes, key=len, reverse=True))
    return pre_tokenizers.Split(Regex(rf"(?:{prefixed})\S+|[{_PUNCT}]|[^\s{_PUNCT}]+"),
                                behavior="removed", invert=True)


@dataclass(frozen=True)
class Tokenizers:
    """A language set and its tokenizers: `merged` names every global id; `by_language[code]`
    turns that language's text into its local ids."""

    merged: PreTrainedTokenizerFast
    languages: LanguageSet
    by_language: dict[str, PreTrainedTokenizerFast]

    @classmethod
    def build(cls, languages: LanguageSet, tokenizers: list[Tokenizer]) -> Tokenizers:
        """Merge one tokenizer per language of `languages` (in its order)."""
        merged: dict[str, int] = {}
        for lang, tok in zip(languages.languages, tokenizers, strict=True):
            merged |= {lang.prefix + t: lang.offset + i for t, i in tok.get_vocab().items()}
        tok = Tokenizer(models.WordPiece(merged, unk_token="[UNK]"))
        tok.normalizer = _normalizer()
        prefixes = [lang.prefix for lang in languages.languages if lang.prefix]
        tok.pre_tokenizer = (_merged_pre_tokenizer(prefixes) if prefixes
                             else pre_tokenizers.BertPreTokenizer())
        # Every language's specials exist as tokens (shift-special uses them): never split them.
        tok.add_special_tokens([lang.prefix + s for lang in languages.languages
                                for s in SPECIAL_TOKENS])
        _with_bert_template(tok)
        return cls(_hf(tok), languages,
                   {lang.code: _hf(t) for lang, t in zip(languages.languages, tokenizers,
                                                          strict=True)})

    @classmethod
    def lab(cls, english: Tokenizer) -> Tokenizers:
        """English + Fake-English: both read English text with the English vocabulary."""
        return cls.build(LanguageSet.lab(english.get_vocab_size()), [english, english])

    def local_ids(self, code: str, texts: list[str],
                  pairs: list[str] | None = None) -> list[list[int]]:
        """Language `code`'s local ids of each text (or text pair), [CLS] … [SEP], ≤ 128 ids."""
        tok = self.by_language[code]
        return tok(texts, pairs, truncation=True, max_length=MAX_LENGTH)["input_ids"]

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        self.merged.save_pretrained(folder)
        self.languages.save(folder)
        for code, tok in self.by_language.items():
            tok.save_pretrained(folder / LANGUAGES_DIR / code)

    @classmethod
    def load(cls, folder: str | Path) -> Tokenizers:
        folder = Path(folder)
        languages = LanguageSet.load(folder)
        return cls(AutoTokenizer.from_pretrained(folder), languages,
                   {code: AutoTokenizer.from_pretrained(folder / LANGUAGES_DIR / code)
                    for code in languages.codes})
