"""Tokenized corpora as arrays: stored once by `prepare`, gathered into batches on the device.

A corpus is one flat array of local token ids plus sentence offsets (sentence i is
ids[offsets[i]:offsets[i+1]], [CLS] and [SEP] included) — compact on disk and cheap to load. A
multilingual corpus (the real track) also names each sentence's language; the lab's corpus does
not, because every English sentence is also its own Fake-English sentence.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from minimult_ml.languages import PAD


@dataclass(frozen=True)
class TokenizedCorpus:
    ids: np.ndarray  # flat local ids, uint16 (every vocabulary here has < 65,536 entries)
    offsets: np.ndarray  # int64, len = sentences + 1
    lang: np.ndarray | None = None  # int8 language index per sentence; None: every language

    @classmethod
    def from_lists(cls, sentences: list[list[int]]) -> TokenizedCorpus:
        lengths = np.fromiter(map(len, sentences), dtype=np.int64, count=len(sentences))
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        ids = np.fromiter((i for s in sentences for i in s), dtype=np.uint16, count=offsets[-1])
        return cls(ids, offsets)

    @classmethod
    def concatenate(cls, corpora: list[TokenizedCorpus]) -> TokenizedCorpus:
        """One multilingual corpus: corpus k's sentences are language k's."""
        starts = np.cumsum([0] + [c.offsets[-1] for c in corpora[:-1]])
        offsets = np.concatenate([[0]] + [c.offsets[1:] + s for c, s in zip(corpora, starts,
                                                                            strict=True)])
        lang = np.concatenate([np.full(len(c), k, dtype=np.int8) for k, c in enumerate(corpora)])
        return cls(np.concatenate([c.ids for c in corpora]), offsets.astype(np.int64), lang)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def sentence(self, i: int) -> list[int]:
        return self.ids[self.offsets[i]:self.offsets[i + 1]].tolist()

    def head(self, n: int) -> TokenizedCorpus:
        n = min(n, len(self))
        return TokenizedCorpus(self.ids[:self.offsets[n]], self.offsets[:n + 1],
                               None if self.lang is None else self.lang[:n])

    def language(self, k: int) -> TokenizedCorpus:
        """The sentences of language k (all of them in a corpus without languages)."""
        if self.lang is None:
            return self
        rows = np.flatnonzero(self.lang == k)
        if len(rows) and np.all(np.diff(rows) == 1):  # prepare writes each language in one run
            start, stop = self.offsets[rows[0]], self.offsets[rows[-1] + 1]
            return TokenizedCorpus(self.ids[start:stop], self.offsets[rows[0]:rows[-1] + 2]
                                   - start)
        return TokenizedCorpus.from_lists([self.sentence(i) for i in rows])

    def mapped(self, table: np.ndarray) -> TokenizedCorpus:
        """Every id i replaced by table[i] (a vocabulary renumbered after encoding)."""
        return TokenizedCorpus(table[self.ids].astype(np.uint16), self.offsets, self.lang)

    def padded(self, max_length: int | None = None) -> torch.Tensor:
        """All sentences as one [sentences, max_length] int64 tensor, padded with [PAD]."""
        lengths = self.lengths
        width = max_length or int(lengths.max())
        out = np.full((len(self), width), PAD, dtype=np.int64)
        mask = np.arange(width)[None, :] < lengths[:, None]
        out[mask] = self.ids
        return torch.from_numpy(out)

    def to(self, device: torch.device) -> DeviceCorpus:
        return DeviceCorpus(torch.from_numpy(self.ids.astype(np.int32)).to(device),
                            torch.from_numpy(self.offsets[:-1]).to(device),
                            torch.from_numpy(self.lengths).to(device))

    def fingerprint(self) -> str:
        """sha256 of ids, offsets (and languages): what every later step records to name its
        data."""
        h = hashlib.sha256(self.ids.tobytes())
        h.update(self.offsets.tobytes())
        if self.lang is not None:
            h.update(self.lang.tobytes())
        return h.hexdigest()

    def save(self, path: str | Path) -> None:
        arrays = {"ids": self.ids, "offsets": self.offsets}
        if self.lang is not None:
            arrays["lang"] = self.lang
        with open(path, "wb") as f:  # a file object keeps numpy from appending ".npz"
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> TokenizedCorpus:
        with np.load(path) as z:
            return cls(z["ids"], z["offsets"], z.get("lang"))


@dataclass(frozen=True)
class DeviceCorpus:
    """A corpus on the device, unpadded: a batch is gathered from the flat ids, so the real
    track's gigabytes of text never become a [sentences, 128] tensor."""

    ids: torch.Tensor  # int32, flat
    starts: torch.Tensor  # int64, first id of each sentence
    lengths: torch.Tensor  # int64

    def rows(self, index: torch.Tensor, width: int) -> torch.Tensor:
        """Sentences `index` as a [len(index), width] int64 tensor padded with [PAD]; `width` is
        at least their longest length (the caller knows it without asking the device)."""
        pos = torch.arange(width, device=self.ids.device)
        where = self.starts[index, None] + pos
        inside = pos < self.lengths[index, None]
        ids = self.ids[where.clamp(max=len(self.ids) - 1)]
        return torch.where(inside, ids, PAD).long()


def training_examples(corpus: TokenizedCorpus, n_languages: int, parallel: bool) -> np.ndarray:
    """(sentence, language) pairs. A multilingual corpus names each sentence's language; the lab's
    has every sentence in every language, or (no-parallel) is cut into one contiguous part per
    language, so no sentence is seen in two languages."""
    n_sentences = len(corpus)
    sentences = np.arange(n_sentences)
    if corpus.lang is not None:
        return np.stack([sentences, corpus.lang.astype(np.int64)], axis=1)
    if parallel:
        return np.stack([np.tile(sentences, n_languages),
                         np.repeat(np.arange(n_languages), n_sentences)], axis=1)
    part = np.minimum(sentences * n_languages // n_sentences, n_languages - 1)
    return np.stack([sentences, part], axis=1)
