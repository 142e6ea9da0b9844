"""The language set: which block of token ids each language owns (DESIGN §4).

Language k owns ids [offset_k, offset_k + size_k). Every block starts with the same five special
tokens, so a language's local id i (its own vocabulary's id) is the global id offset_k + i.
Tokens stay in local ids on disk; the shift to global ids happens per batch, on the device.
Without shift-special every language uses block 0's specials; with it, language k uses its own.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD, UNK, CLS, SEP, MASK = range(len(SPECIAL_TOKENS))
NUM_SPECIAL = len(SPECIAL_TOKENS)
FAKE_PREFIX = "::"
FILENAME = "language_set.json"


@dataclass(frozen=True)
class Language:
    code: str  # "en", "fake-en", "de", …
    offset: int  # first global id of the block
    size: int  # number of ids in the block, specials included
    prefix: str = ""  # how the merged vocabulary writes its tokens: "::" + token in Fake-English


@dataclass(frozen=True)
class LanguageSet:
    languages: tuple[Language, ...]

    @classmethod
    def lab(cls, vocab_size: int) -> LanguageSet:
        """English plus Fake-English: the same vocabulary shifted by `vocab_size` (paper Fig. 2)."""
        return cls((Language("en", 0, vocab_size), Language("fake-en", vocab_size, vocab_size,
                                                             FAKE_PREFIX)))

    @classmethod
    def concatenate(cls, codes: list[str], sizes: list[int]) -> LanguageSet:
        """Blocks of the given sizes laid end to end (the real track: one vocabulary each).

        In the merged vocabulary every language after the first writes its tokens as
        "<code>::token", so equal strings of two languages stay two tokens.
        """
        offsets = [sum(sizes[:k]) for k in range(len(sizes))]
        prefixes = ["", *(f"{c}{FAKE_PREFIX}" for c in codes[1:])]
        return cls(tuple(Language(c, o, s, p)
                         for c, o, s, p in zip(codes, offsets, sizes, prefixes, strict=True)))

    @property
    def is_lab(self) -> bool:
        """English + Fake-English: one corpus seen in both languages (paper §2.1)."""
        return self.codes == ["en", "fake-en"]

    def __len__(self) -> int:
        return len(self.languages)

    @property
    def vocab_size(self) -> int:
        last = self.languages[-1]
        return last.offset + last.size

    @property
    def codes(self) -> list[str]:
        return [lang.code for lang in self.languages]

    def index(self, code: str) -> int:
        if code not in self.codes:
            raise ValueError(f"unknown language {code!r}; this language set has {self.codes}")
        return self.codes.index(code)

    def offsets(self, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.tensor([lang.offset for lang in self.languages], device=device)

    def to_global(self, local_ids: torch.Tensor, lang: torch.Tensor | int,
                  shift_special: bool) -> torch.Tensor:
        """Local ids of language(s) `lang` (an int, or a tensor broadcastable to them) → global ids.

        Specials move with their language only under shift-special.
        """
        lang = torch.as_tensor(lang, device=local_ids.device)
        shift = self.offsets(local_ids.device)[lang]
        if not shift_special:
            shift = torch.where(local_ids < NUM_SPECIAL, 0, shift)
        return local_ids + shift

    def language_of(self, global_ids: torch.Tensor) -> torch.Tensor:
        """The language index that owns each global id."""
        return torch.bucketize(global_ids, self.offsets(global_ids.device), right=True) - 1

    def local(self, global_ids: torch.Tensor) -> torch.Tensor:
        return global_ids - self.offsets(global_ids.device)[self.language_of(global_ids)]

    def is_special(self, global_ids: torch.Tensor) -> torch.Tensor:
        return self.local(global_ids) < NUM_SPECIAL

    def non_special_ids(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """Every non-special global id of every language (what random replacement draws from)."""
        return torch.cat([torch.arange(lang.offset + NUM_SPECIAL, lang.offset + lang.size,
                                       device=device) for lang in self.languages])

    def save(self, folder: str | Path) -> None:
        data = {"languages": [asdict(lang) for lang in self.languages]}
        Path(folder, FILENAME).write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls, folder: str | Path) -> LanguageSet:
        data = json.loads(Path(folder, FILENAME).read_text())
        return cls(tuple(Language(**lang) for lang in data["languages"]))
