"""MLM masking: standard, no-random and knn-replace (paper §2.3, §4), on the device.

Of the non-special tokens, `mlm_probability` are selected; each selected token becomes [MASK]
(its language's own [MASK] under shift-special), stays, becomes a random non-special token of any
language, or (knn-replace) becomes one of its k nearest neighbours in another language, with
probabilities (p_mask, p_keep, p_random, p_knn). Labels are the original ids at selected positions
and -100 elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from scipy.stats import binom

from minimult_ml.languages import MASK, LanguageSet

IGNORE = -100
# The chance that a batch selects more positions than `Masker.capacity` allows.
OVERFLOW = 1e-15


@dataclass(frozen=True)
class MaskingConfig:
    mlm_probability: float = 0.15
    p_mask: float = 0.8
    p_keep: float = 0.1
    p_random: float = 0.1
    p_knn: float = 0.0


class Masker:
    """Masks batches of global ids; tables it needs are built once, on the batch device."""

    def __init__(self, languages: LanguageSet, config: MaskingConfig, shift_special: bool,
                 device: torch.device | str, knn_table: torch.Tensor | None = None) -> None:
        if config.p_knn > 0 and knn_table is None:
            raise ValueError("knn-replace masking needs a neighbour table")
        self.languages = languages
        self.config = config
        self.shift_special = shift_special
        self.random_pool = languages.non_special_ids(device)
        # knn_table[id, lang, :] = the k nearest neighbours of global id `id` in language `lang`
        self.knn_table = None if knn_table is None else knn_table.to(device)
        c = config
        self.thresholds = torch.tensor([c.p_mask, c.p_mask + c.p_keep,
                                        c.p_mask + c.p_keep + c.p_random], device=device)

    def capacity(self, n_tokens: int) -> int:
        """The most positions a batch of `n_tokens` real tokens gets selected, known before the
        draws: the selected count is Binomial(candidates ≤ n_tokens, mlm_probability), above
        this bound with probability under OVERFLOW. A fixed-size gather of this many positions
        (`model.masked_positions`) then needs no host sync; at batch 256 it is ~25 % above the
        mean count, a few % of the step's FLOPs."""
        return min(n_tokens, int(binom.isf(OVERFLOW, n_tokens, self.config.mlm_probability)))

    def __call__(self, input_ids: torch.Tensor, lang: torch.Tensor,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Global ids [B, L] of languages `lang` [B] → (masked ids, labels)."""
        device = input_ids.device

        def uniform() -> torch.Tensor:
            return torch.rand(input_ids.shape, generator=generator, device=device)

        candidate = ~self.languages.is_special(input_ids)  # padding is special too
        selected = candidate & (uniform() < self.config.mlm_probability)
        labels = torch.where(selected, input_ids, IGNORE)
        # 0 = mask, 1 = keep, 2 = random, 3 = knn
        action = torch.bucketize(uniform(), self.thresholds, right=True)
        row_lang = lang.unsqueeze(1).expand_as(input_ids)
        mask_id = self.languages.to_global(torch.full_like(input_ids, MASK), row_lang,
                                           self.shift_special)
        random_id = self.random_pool[torch.randint(len(self.random_pool), input_ids.shape,
                                                   generator=generator, device=device)]
        out = torch.where(action == 0, mask_id, input_ids)
        out = torch.where(action == 2, random_id, out)
        if self.knn_table is not None:
            out = torch.where(action == 3, self._neighbours(input_ids, row_lang, generator), out)
        return torch.where(selected, out, input_ids), labels

    def _neighbours(self, ids: torch.Tensor, lang: torch.Tensor,
                    generator: torch.Generator) -> torch.Tensor:
        """One of the k neighbours of each id, in a language drawn uniformly from the others."""
        n_lang, k = self.knn_table.shape[1:]
        r = torch.randint(n_lang - 1, ids.shape, generator=generator, device=ids.device)
        other = r + (r >= lang).long()  # skips the token's own language
        pick = torch.randint(k, ids.shape, generator=generator, device=ids.device)
        return self.knn_table[ids, other, pick]
