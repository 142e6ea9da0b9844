"""BERT for MLM from the size presets, the MLM loss computed at masked positions only, and hidden
states of chosen layers without running the blocks above them."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from transformers import BertConfig, BertForMaskedLM, BertModel
from transformers.masking_utils import create_bidirectional_mask

from minimult_ml.experiments import SIZES
from minimult_ml.masking import IGNORE


def build_model(size: str, vocab_size: int, num_languages: int, max_length: int = 128,
                seed: int = 0, dropout: float = 0.1) -> BertForMaskedLM:
    """A randomly initialised BertForMaskedLM; positions and token types fit lang-pos."""
    config = BertConfig(vocab_size=vocab_size, max_position_embeddings=max_length * num_languages,
                        type_vocab_size=max(2, num_languages), hidden_dropout_prob=dropout,
                        attention_probs_dropout_prob=dropout, **SIZES[size])
    torch.manual_seed(seed)
    return BertForMaskedLM(config)


def masked_positions(labels: torch.Tensor, capacity: int | None = None) -> torch.Tensor:
    """Flat indices of the masked positions (labels ≠ -100) in row-major order, as a fixed-size
    gather: `capacity` indices, the masked ones first, then unmasked fillers whose label the
    loss ignores. A boolean index would size its output by the data, a host sync on CUDA and a
    graph break for torch.compile; None means the exact count, at the price of that sync."""
    unmasked = (labels.flatten() == IGNORE).to(torch.uint8)
    if capacity is None:
        capacity = int(len(unmasked) - unmasked.sum())
    return torch.argsort(unmasked, stable=True)[:capacity]


def mlm_loss(model: BertForMaskedLM, inputs: dict[str, torch.Tensor], labels: torch.Tensor,
             capacity: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed NLL, number of masked tokens): the vocabulary head runs on masked positions only
    (`capacity` rows: see `masked_positions`).

    With 15% masking this skips 85% of the largest matrix product of the small model.
    """
    hidden = model.bert(**inputs).last_hidden_state.flatten(0, 1)
    positions = masked_positions(labels, capacity)
    logits = model.cls(hidden[positions])
    nll = F.cross_entropy(logits.float(), labels.flatten()[positions], reduction="sum",
                          ignore_index=IGNORE)
    return nll, (labels != IGNORE).sum()


class MaskedLMObjective(torch.nn.Module):
    """`mlm_loss` as a module, so that DDP and torch.compile can wrap the whole step's forward."""

    def __init__(self, model: BertForMaskedLM) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: dict[str, torch.Tensor], labels: torch.Tensor,
                capacity: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return mlm_loss(self.model, inputs, labels, capacity)


def hidden_states(bert: BertModel, inputs: dict[str, torch.Tensor],
                  layers: Sequence[int]) -> list[torch.Tensor]:
    """The hidden states at `layers` (0 = the embedding output), as `output_hidden_states` gives
    them, running the encoder only up to the highest requested layer.

    Evaluation reads layers 0 and 8 of 12: the top four blocks would be a third of its work.
    """
    hidden = bert.embeddings(input_ids=inputs["input_ids"], position_ids=inputs["position_ids"],
                             token_type_ids=inputs["token_type_ids"])
    mask = create_bidirectional_mask(config=bert.config, inputs_embeds=hidden,
                                     attention_mask=inputs["attention_mask"])
    states = [hidden]
    for block in bert.encoder.layer[:max(layers)]:
        hidden = block(hidden, mask)
        states.append(hidden)
    return [states[layer] for layer in layers]
