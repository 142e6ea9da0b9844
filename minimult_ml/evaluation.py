"""Evaluate one checkpoint: multilinguality (alignment, retrieval ρ, translation τ, μ) and model
fit (perplexity), exactly as the paper defines them (§2.2, Appendix A.1; DESIGN §6).

The dev set and its Fake-English copy go through the model with the run's own modifications
(the same `build_inputs` as training). Token vectors never leave the device: each chunk of
sentence pairs adds its alignment counts and mean-pooled sentence vectors, and retrieval and
translation are batched matrix products at the end.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from transformers import BertForMaskedLM

from minimult_ml import metrics
from minimult_ml.data import TokenizedCorpus, training_examples
from minimult_ml.experiments import TrainConfig
from minimult_ml.inputs import InputConfig, build_inputs, input_config
from minimult_ml.languages import CLS, SEP, LanguageSet
from minimult_ml.masking import Masker, MaskingConfig
from minimult_ml.model import hidden_states, mlm_loss

PPL_SEED = 0  # the same masked positions for every checkpoint and every exp
PPL_MASKING = MaskingConfig(mlm_probability=0.15, p_mask=1.0, p_keep=0.0, p_random=0.0)
ENGLISH, FAKE = 0, 1


@dataclass(frozen=True)
class Evaluator:
    model: BertForMaskedLM
    config: TrainConfig
    languages: LanguageSet
    device: torch.device
    batch_size: int = 0  # 0 = by device: see `rows_per_batch`

    @property
    def rows_per_batch(self) -> int:
        # On the CPU, 128 rows keep a block's activations in cache (measured faster than 512);
        # a GPU wants as many rows as it can take.
        return self.batch_size or (512 if self.device.type == "cuda" else 128)

    @property
    def inputs(self) -> InputConfig:
        return input_config(self.config, self.languages)

    def _forward(self, local: torch.Tensor, lang: int, layers: Sequence[int],
                 lengths: torch.Tensor | None = None) -> list[torch.Tensor]:
        langs = torch.full((len(local),), lang, device=self.device)
        x = build_inputs(local, langs, self.languages, self.inputs, lengths)
        return hidden_states(self.model.bert, x, layers)

    def _chunks(self, ids: TokenizedCorpus) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Padded local ids and lengths on the device, in chunks of similar length."""
        order = ids.lengths.argsort(kind="stable")
        padded = ids.padded()
        lengths = torch.from_numpy(ids.lengths)
        for start in range(0, len(order), self.rows_per_batch):
            rows = torch.from_numpy(order[start:start + self.rows_per_batch])
            width = int(lengths[rows].max())
            yield padded[rows, :width].to(self.device), lengths[rows].to(self.device)

    @torch.inference_mode()
    def sentences(self, dev: TokenizedCorpus, layers: Sequence[int]) -> dict[str, float]:
        """Alignment and retrieval on parallel dev sentences, per layer."""
        counts = {layer: torch.zeros(3, 3, dtype=torch.long, device=self.device)
                  for layer in layers}
        pooled: dict[int, tuple[list[torch.Tensor], list[torch.Tensor]]] = {
            layer: ([], []) for layer in layers}
        for local, lengths in self._chunks(dev):
            en = self._forward(local, ENGLISH, layers)
            fake = self._forward(local, FAKE, layers)
            n = lengths - 2  # tokens between [CLS] and [SEP]
            content = torch.arange(local.shape[1] - 1, device=self.device) < n[:, None]
            for layer, h_en, h_fake in zip(layers, en, fake, strict=True):
                src, tgt = h_en[:, 1:], h_fake[:, 1:]  # drop [CLS]; [SEP] and padding by `n`
                counts[layer] += metrics.alignment_counts(src, tgt, n, self.config.inv_order)
                pooled[layer][0].append(metrics.mean_pool(src, content))
                pooled[layer][1].append(metrics.mean_pool(tgt, content))
        scores = {}
        for layer in layers:
            for name, value in metrics.alignment_from_counts(counts[layer]).items():
                # The paper's F1 is the intersection's: align_f1; the others keep their name.
                name = name.removeprefix("intersection_")
                scores[f"align_{name}/L{layer}"] = value
            src, tgt = (torch.cat(p) for p in pooled[layer])
            scores |= _retrieval("retrieval", src, tgt, layer)
        return scores

    @torch.inference_mode()
    def translation(self, layers: Sequence[int]) -> tuple[dict[str, float], torch.Tensor]:
        """Word translation τ: every vocabulary entry alone as [CLS] w [SEP] (Appendix A.1).

        Also returns the layer-0-or-first-layer word vectors of both languages (for Figure 4).
        """
        size = self.languages.languages[ENGLISH].size
        words = torch.arange(size, device=self.device)
        local = torch.stack([torch.full_like(words, CLS), words, torch.full_like(words, SEP)], 1)
        lengths = torch.full_like(words, 3)  # [PAD] is a word here too: lengths are explicit
        vectors = {lang: [h[:, 1] for h in self._forward(local, lang, layers, lengths)]
                   for lang in (ENGLISH, FAKE)}
        scores = {}
        for i, layer in enumerate(layers):
            scores |= _retrieval("translation", vectors[ENGLISH][i], vectors[FAKE][i], layer)
        return scores, torch.cat([vectors[ENGLISH][0], vectors[FAKE][0]])

    @torch.inference_mode()
    def perplexity(self, ids: TokenizedCorpus, parallel: bool = True) -> float:
        """MLM perplexity with 15% of non-special tokens replaced by [MASK], fixed seed."""
        generator = torch.Generator(self.device).manual_seed(PPL_SEED)
        masker = Masker(self.languages, PPL_MASKING, self.config.shift_special, self.device)
        examples = torch.from_numpy(training_examples(ids, len(self.languages), parallel))
        padded = ids.padded().to(self.device)
        lengths = torch.from_numpy(ids.lengths)
        order = lengths[examples[:, 0]].argsort(stable=True)
        nll, count = torch.zeros((), device=self.device), torch.zeros((), device=self.device)
        for start in range(0, len(order), self.rows_per_batch):
            rows = examples[order[start:start + self.rows_per_batch]]
            width = int(lengths[rows[:, 0]].max())
            rows = rows.to(self.device)
            x = build_inputs(padded[rows[:, 0], :width], rows[:, 1], self.languages, self.inputs)
            x["input_ids"], labels = masker(x["input_ids"], rows[:, 1], generator)
            part_nll, part_count = mlm_loss(self.model, x, labels)
            nll += part_nll
            count += part_count
        return metrics.perplexity(nll.item(), int(count.item()))


def _retrieval(task: str, src: torch.Tensor, tgt: torch.Tensor, layer: int) -> dict[str, float]:
    renamed = {"src2tgt": "en2fake", "tgt2src": "fake2en"}
    scores = {}
    for key, value in metrics.retrieval_scores(src, tgt).items():
        k, _, direction = key.partition("_")
        suffix = f"_{renamed[direction]}" if direction else ""
        scores[f"{task}_{k}{suffix}/L{layer}"] = value
    return scores


def evaluate(model: BertForMaskedLM, config: TrainConfig, languages: LanguageSet,
             train: TokenizedCorpus, dev: TokenizedCorpus, layers: Sequence[int] = (0, 8),
             device: torch.device | None = None) -> tuple[dict[str, float], torch.Tensor]:
    """Every number of Table 1 for one checkpoint, and the layer-0 word vectors (Figure 4).

    μ needs layers 0 and 8 and is reported only when both are evaluated.
    """
    device = device or next(model.parameters()).device
    evaluator = Evaluator(model.to(device).eval(), config, languages, device)
    scores = evaluator.sentences(dev, layers)
    translation, word_vectors = evaluator.translation(layers)
    scores |= translation
    if {0, 8} <= set(layers):
        scores["mult_score"] = metrics.multilinguality_score(
            scores["translation_p1/L0"], scores["translation_p1/L8"],
            scores["retrieval_p1/L0"], scores["retrieval_p1/L8"])
    scores["ppl/train"] = evaluator.perplexity(train, parallel=not config.no_parallel)
    scores["ppl/dev"] = evaluator.perplexity(dev)
    return scores, word_vectors
