"""Per-word vectors from an encoder's hidden states (DESIGN §6; paper Appendix B.2).

An encoder is a Hugging Face model folder or hub name (mBERT by default) or a checkpoint of our
own pretrain runs: a folder with `language_set.json` beside the model. Our checkpoints read each
language with that language's own tokenizer and get their inputs exactly as in training
(`build_inputs`: language offsets, lang-pos, shift-special, inv-order), so they only encode the
languages of their language set; the lab's Fake-English reads English text.

Sentences go through the model in batches of similar length (little padding); a word's vector is
the mean of its subword vectors at the chosen layer, with specials and padding dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.utils.rnn import pad_sequence
from transformers import (
    AutoConfig,
    AutoModel,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from minimult_ml.errors import InputError
from minimult_ml.experiments import CONFIG_FILE, load_config
from minimult_ml.hub import hub_errors, without_load_report
from minimult_ml.inputs import InputConfig, build_inputs, input_config, inversion_index
from minimult_ml.languages import FILENAME as LANGUAGE_SET_FILE
from minimult_ml.vocab import Tokenizers
from minimult_ml.wordorder import word_vectors

# A vocabulary file of the common tokenizer kinds. Transformers builds a tokenizer that knows
# only its special tokens from a folder without any of them, so their absence is checked first.
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "sentencepiece.bpe.model",
                   "spiece.model", "tokenizer.model")
# Encoder-only models whose `AutoModel` reads input_ids and an attention mask and returns one
# hidden state per layer; an encoder-decoder (T5) or a decoder would need other inputs.
ENCODER_TYPES = ("bert", "distilbert", "roberta", "xlm-roberta", "camembert", "electra",
                 "albert", "deberta-v2", "mpnet", "roformer")  # roformer: rel-pos checkpoints


@dataclass(frozen=True)
class RunInputs:
    """What our own checkpoints need beyond a Hugging Face model: each language's tokenizer (and
    id block) and the run's transforms."""

    tokenizers: Tokenizers
    config: InputConfig


@dataclass
class Encoder:
    name: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    device: torch.device
    ours: RunInputs | None = None  # set for checkpoints of our pretrain runs

    @property
    def num_layers(self) -> int:
        return self.model.config.num_hidden_layers

    @property
    def max_length(self) -> int:
        return min(self.tokenizer.model_max_length, self.model.config.max_position_embeddings)

    def check(self, languages: Sequence[str], layer: int) -> None:
        """Bad input before any work: a layer the model lacks, a language it cannot encode."""
        if not 0 <= layer <= self.num_layers:
            raise InputError(f"layer {layer}: model {self.name} has layers 0 (embeddings) to "
                             f"{self.num_layers}")
        if self.ours is None:
            return
        codes = self.ours.tokenizers.languages.codes
        missing = [code for code in ("en", *languages) if code not in codes]
        if missing:
            others = [c for c in codes if c != "en"]
            raise InputError(
                f"model {self.name} is a minimult checkpoint with languages {', '.join(codes)} "
                f"and cannot encode {', '.join(missing)}: pass languages={','.join(others)} with "
                f"data=dir:PATH holding en.txt and {', '.join(c + '.txt' for c in others)} "
                f"(Fake-English: the English sentences), or a multilingual model")

    @torch.inference_mode()
    def word_vectors(self, sentences: Sequence[str], lang: str, layer: int,
                     batch_size: int = 64) -> list[torch.Tensor]:
        """(words, hidden) float32 CPU tensors at `layer`, one per sentence, in input order.

        Sentences longer than the model's maximum length are truncated (their last words get no
        vector). `lang` matters only for our own checkpoints: its tokenizer gives local ids.
        """
        tokenizer = self.tokenizer if self.ours is None else \
            self.ours.tokenizers.by_language[lang]
        enc = tokenizer(list(sentences), truncation=True, max_length=self.max_length)
        ids = [torch.tensor(x) for x in enc["input_ids"]]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out: list[torch.Tensor] = [torch.empty(0)] * len(ids)
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            batch = pad_sequence([ids[i] for i in rows], batch_first=True,
                                 padding_value=tokenizer.pad_token_id).to(self.device)
            lengths = torch.tensor([len(ids[i]) for i in rows], device=self.device)
            hidden = self._hidden(batch, lengths, lang, layer)
            # One pooling call per batch, not one per sentence (tiny tensor ops are slow):
            # every sentence's words get ids of their own, padding gets none.
            flat: list[int | None] = []
            counts, offset = [], 0
            for i in rows:
                words = enc.word_ids(i)
                present = sorted({w for w in words if w is not None})
                flat += [None if w is None else w + offset for w in words]
                flat += [None] * (hidden.shape[1] - len(words))
                counts.append(len(present))
                offset += present[-1] + 1 if present else 0
            pooled = word_vectors(hidden.flatten(0, 1), flat).float().cpu()
            for i, vectors in zip(rows, pooled.split(counts), strict=True):
                out[i] = vectors
        return out

    def _hidden(self, ids: torch.Tensor, lengths: torch.Tensor, lang: str,
                layer: int) -> torch.Tensor:
        mask = torch.arange(ids.shape[1], device=self.device) < lengths[:, None]
        if self.ours is None:
            return self.model(input_ids=ids, attention_mask=mask.long(),
                              output_hidden_states=True).hidden_states[layer]
        languages, config = self.ours.tokenizers.languages, self.ours.config
        k = torch.full((len(ids),), languages.index(lang), device=self.device)
        x = build_inputs(ids, k, languages, config, lengths)  # ids are the language's local ids
        hidden = self.model(**x, output_hidden_states=True).hidden_states[layer]
        if config.inverted:
            # inv-order fed this language reversed; reversing again puts every vector back at
            # its token, so the tokenizer's word ids apply.
            rows = torch.isin(k, torch.tensor(config.inverted, device=self.device))
            back = inversion_index(ids, lengths, rows)
            hidden = hidden.gather(1, back[..., None].expand_as(hidden))
        return hidden


def load_encoder(name: str, device: torch.device | None = None) -> Encoder:
    """A local model folder (ours or any Hugging Face one) or a hub name, on CUDA when there."""
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    folder = Path(name).expanduser()
    local = folder.is_dir()
    if local:
        if not any((folder / f).is_file() for f in TOKENIZER_FILES):
            raise InputError(f"model folder {folder} has no tokenizer (none of "
                             f"{', '.join(TOKENIZER_FILES)}); save one beside the model with "
                             f"tokenizer.save_pretrained")
        where = f"model folder {folder}"
        hint = "pass a folder written by save_pretrained (model and tokenizer)"
    else:
        where = f"model {name!r} (no such folder; tried the Hugging Face hub)"
        hint = "pass an existing model folder, or a hub name with network access"
    with hub_errors(where, hint):  # missing files, bad configs, no network
        source = str(folder) if local else name
        model_config = AutoConfig.from_pretrained(source)
        if model_config.model_type not in ENCODER_TYPES:
            raise InputError(f"{where} is a {model_config.model_type!r} model; word vectors "
                             f"need an encoder of type {', '.join(ENCODER_TYPES)} (like mBERT "
                             "or XLM-R, or a checkpoint of a pretrain run)")
        tokenizer = AutoTokenizer.from_pretrained(source)
        with without_load_report():  # a pretrain run's checkpoint: its MLM head is dropped
            model = AutoModel.from_pretrained(source, config=model_config)
    if not tokenizer.is_fast:
        raise InputError(f"{where} has a slow tokenizer; word vectors need a fast one "
                         f"(tokenizer.json), which gives each subword's word")
    ours = None
    if local and (folder / LANGUAGE_SET_FILE).is_file():
        if not (folder / CONFIG_FILE).is_file():
            raise InputError(f"{where} has {LANGUAGE_SET_FILE} but no {CONFIG_FILE}: pass a "
                             f"checkpoint folder of a pretrain run as it was saved")
        tokenizers = Tokenizers.load(folder)
        config = load_config(folder)
        ours = RunInputs(tokenizers, input_config(config, tokenizers.languages))
    return Encoder(name, model.to(device).eval(), tokenizer, device, ours)
