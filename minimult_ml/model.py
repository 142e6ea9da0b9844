"""The masked LM from the size presets — BERT, or with rel-pos RoFormer —, the MLM loss computed at
masked positions only, and hidden states of chosen layers without running the blocks above them.

Both are Hugging Face classes (checkpoints load with `AutoModelForMaskedLM.from_pretrained`); the
rest of the project reaches the encoder through `base_model` and the vocabulary head through
`cls`, which both classes have, so nothing else needs to know which one a run trained.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from transformers import (
    BertConfig,
    BertForMaskedLM,
    PreTrainedModel,
    RoFormerConfig,
    RoFormerForMaskedLM,
)

from minimult_ml.experiments import SIZES
from minimult_ml.masking import IGNORE


def build_model(size: str, vocab_size: int, num_languages: int, max_length: int = 128,
                seed: int = 0, dropout: float = 0.1, rel_pos: bool = False) -> PreTrainedModel:
    """A randomly initialised masked LM: BertForMaskedLM, whose learned absolute positions and
    token types fit lang-pos, or (rel-pos) RoFormerForMaskedLM, the same shape with rotary
    attention: a query-key score depends on the two tokens and their offset only, and no
    absolute position enters anywhere (token types stay, one per language)."""
    shape = dict(vocab_size=vocab_size, type_vocab_size=max(2, num_languages),
                 hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout, **SIZES[size])
    if rel_pos:  # the rotary table needs a row per position of one sentence, nothing more
        config = RoFormerConfig(max_position_embeddings=max_length, **shape)
    else:
        config = BertConfig(max_position_embeddings=max_length * num_languages, **shape)
    torch.manual_seed(seed)
    return RoFormerForMaskedLM(config) if rel_pos else BertForMaskedLM(config)


def position_embeddings(model: PreTrainedModel) -> torch.Tensor | None:
    """The learned absolute position embeddings (one row per position; Figures 5 and 8), or None
    for a rel-pos model, which has none: its positions act only inside attention, as offsets."""
    table = getattr(model.base_model.embeddings, "position_embeddings", None)
    return None if table is None else table.weight.detach()


def masked_positions(labels: torch.Tensor, capacity: int | None = None) -> torch.Tensor:
    """Flat indices of the masked positions (labels ≠ -100) in row-major order, as a fixed-size
    gather: `capacity` indices, the masked ones first, then unmasked fillers whose label the
    loss ignores. A boolean index would size its output by the data, a host sync on CUDA and a
    graph break for torch.compile; None means the exact count, at the price of that sync."""
    unmasked = (labels.flatten() == IGNORE).to(torch.uint8)
    if capacity is None:
        capacity = int(len(unmasked) - unmasked.sum())
    return torch.argsort(unmasked, stable=True)[:capacity]


def mlm_loss(model: PreTrainedModel, inputs: dict[str, torch.Tensor], labels: torch.Tensor,
             capacity: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed NLL, number of masked tokens): the vocabulary head runs on masked positions only
    (`capacity` rows: see `masked_positions`).

    With 15% masking this skips 85% of the largest matrix product of the small model.
    """
    hidden = model.base_model(**inputs).last_hidden_state.flatten(0, 1)
    positions = masked_positions(labels, capacity)
    logits = model.cls(hidden[positions])
    nll = F.cross_entropy(logits.float(), labels.flatten()[positions], reduction="sum",
                          ignore_index=IGNORE)
    return nll, (labels != IGNORE).sum()


class MaskedLMObjective(torch.nn.Module):
    """`mlm_loss` as a module, so that DDP and torch.compile can wrap the whole step's forward."""

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: dict[str, torch.Tensor], labels: torch.Tensor,
                capacity: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return mlm_loss(self.model, inputs, labels, capacity)


class _Reached(Exception):
    """The forward pass reached the first block whose output nobody asked for."""


def hidden_states(model: PreTrainedModel, inputs: dict[str, torch.Tensor],
                  layers: Sequence[int]) -> list[torch.Tensor]:
    """The hidden states at `layers` (0 = the embedding output) of a model or its masked-LM
    wrapper, as `output_hidden_states` gives them, running the encoder only up to the highest
    requested layer.

    Evaluation reads layers 0 and 8 of 12: the top four blocks would be a third of its work.
    The model's own forward runs (embeddings, attention mask, rotary table: whatever its class
    does); layer L is what enters block L, taken by a hook, and the hook of the highest
    requested layer stops the pass there. So every architecture gets the same saving, and the
    model is never modified.
    """
    encoder = model.base_model
    blocks = encoder.encoder.layer
    top = max(layers)
    states: dict[int, torch.Tensor] = {}

    def entering(layer: int) -> Callable[[torch.nn.Module, tuple], None]:
        def hook(block: torch.nn.Module, args: tuple) -> None:
            states[layer] = args[0]
            if layer == top:
                raise _Reached
        return hook

    hooks = [blocks[layer].register_forward_pre_hook(entering(layer))
             for layer in set(layers) if layer < len(blocks)]
    try:
        states[len(blocks)] = encoder(**inputs).last_hidden_state
    except _Reached:
        pass
    finally:
        for handle in hooks:
            handle.remove()
    return [states[layer] for layer in layers]
