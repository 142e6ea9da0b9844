"""Per-batch input transforms (paper §2.3–2.4): inv-order, shift-special, lang-pos.

A batch arrives as local token ids of one language per row ([CLS] … [SEP], padded) and leaves as
the tensors BERT reads. Everything is tensor work on the batch's device; training and evaluation
call the same function, so evaluation sees exactly what training saw.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from minimult_ml.experiments import TrainConfig, inverted_languages
from minimult_ml.languages import CLS, PAD, SEP, LanguageSet


@dataclass(frozen=True)
class InputConfig:
    lang_pos: bool = False
    shift_special: bool = False
    inverted: tuple[int, ...] = ()  # languages whose word order is reversed (inv-order)
    max_length: int = 128  # language k's positions start at k · max_length under lang-pos


def input_config(config: TrainConfig, languages: LanguageSet) -> InputConfig:
    """The transforms a run's config asks for, on its language set (training, evaluation,
    representations and fine-tuning all read the run through this)."""
    return InputConfig(lang_pos=config.lang_pos, shift_special=config.shift_special,
                       inverted=inverted_languages(config, languages.codes),
                       max_length=config.max_length)


def inversion_index(local_ids: torch.Tensor, lengths: torch.Tensor,
                    rows: torch.Tensor) -> torch.Tensor:
    """Where each position of an inv-order row reads from: every segment between [CLS]/[SEP]
    boundaries mirrored, everything else (specials, padding, unselected rows) in place.

    A sentence is one segment (paper Appendix A.2); a sentence pair ([CLS] a [SEP] b [SEP], as in
    XNLI) has two, each reversed in place. The index is an involution: it also maps back.
    """
    width = local_ids.shape[1]
    pos = torch.arange(width, device=local_ids.device).expand_as(local_ids)
    boundary = (local_ids == CLS) | (local_ids == SEP) | (pos >= lengths.unsqueeze(1))
    before = torch.where(boundary, pos, -1).cummax(1).values  # last boundary at or before p
    after = torch.where(boundary, pos, width).flip(1).cummin(1).values.flip(1)  # first at/after
    keep = boundary | ~rows.unsqueeze(1)
    return torch.where(keep, pos, before + after - pos)


def invert_order(local_ids: torch.Tensor, lengths: torch.Tensor,
                 rows: torch.Tensor) -> torch.Tensor:
    """Reverse the tokens between [CLS] and [SEP] in the selected rows (paper Appendix A.2)."""
    return local_ids.gather(1, inversion_index(local_ids, lengths, rows))


def build_inputs(local_ids: torch.Tensor, lang: torch.Tensor, languages: LanguageSet,
                 config: InputConfig,
                 lengths: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Local ids [B, L] of languages `lang` [B] → input_ids, position/token type ids, mask.

    `lengths` defaults to the count of non-[PAD] ids ([PAD] is local id 0 in every language).
    """
    if lengths is None:
        lengths = (local_ids != PAD).sum(1)
    if config.inverted:
        inverted = torch.isin(lang, torch.tensor(config.inverted, device=lang.device))
        local_ids = invert_order(local_ids, lengths, inverted)
    input_ids = languages.to_global(local_ids, lang.unsqueeze(1), config.shift_special)
    positions = torch.arange(local_ids.shape[1], device=local_ids.device).expand_as(local_ids)
    attention_mask = positions < lengths.unsqueeze(1)
    if config.lang_pos:
        position_ids = positions + (lang * config.max_length).unsqueeze(1)
        token_type_ids = lang.unsqueeze(1).expand_as(local_ids)
    else:
        position_ids = positions
        token_type_ids = torch.zeros_like(local_ids)
    return {"input_ids": input_ids, "position_ids": position_ids,
            "token_type_ids": token_type_ids, "attention_mask": attention_mask.long()}
