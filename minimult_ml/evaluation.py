"""Evaluate one checkpoint: multilinguality (alignment, retrieval ρ, translation τ, μ) and model
fit (perplexity), exactly as the paper defines them (§2.2, Appendix A.1; DESIGN §6).

The real track has no gold word alignment or dictionary between real languages; what its
parallel dev verses (the Bibles) measure is sentence retrieval between English and each other
language, the same ρ as the lab's (`evaluate_real`).

The dev set and its Fake-English copy go through the model with the run's own modifications
(the same `build_inputs` as training). Token vectors never leave the device: each chunk of
sentence pairs adds its alignment counts and mean-pooled sentence vectors, and retrieval and
translation are batched matrix products at the end.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel

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
    model: PreTrainedModel  # a masked LM of `model.build_model`
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
        return hidden_states(self.model, x, layers)

    def _chunks(self, ids: TokenizedCorpus,
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Row indices, padded local ids and lengths on the device, in chunks of similar
        length."""
        order = ids.lengths.argsort(kind="stable")
        padded = ids.padded()
        lengths = torch.from_numpy(ids.lengths)
        for start in range(0, len(order), self.rows_per_batch):
            rows = torch.from_numpy(order[start:start + self.rows_per_batch])
            width = int(lengths[rows].max())
            yield rows, padded[rows, :width].to(self.device), lengths[rows].to(self.device)

    @torch.inference_mode()
    def sentences(self, dev: TokenizedCorpus, layers: Sequence[int]) -> dict[str, float]:
        """Alignment and retrieval on parallel dev sentences, per layer."""
        counts = {layer: torch.zeros(3, 3, dtype=torch.long, device=self.device)
                  for layer in layers}
        pooled: dict[int, tuple[list[torch.Tensor], list[torch.Tensor]]] = {
            layer: ([], []) for layer in layers}
        for _, local, lengths in self._chunks(dev):
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
    def sentence_vectors(self, ids: TokenizedCorpus, lang: int,
                         layers: Sequence[int]) -> list[torch.Tensor]:
        """Per layer, each sentence of `ids` read as language `lang`: the mean of its token
        vectors, [CLS], [SEP] and padding left out; rows in the order of `ids`."""
        out = [torch.empty(len(ids), self.model.config.hidden_size, device=self.device)
               for _ in layers]
        for rows, local, lengths in self._chunks(ids):
            content = torch.arange(local.shape[1] - 1, device=self.device) < (lengths - 2)[:, None]
            for vectors, h in zip(out, self._forward(local, lang, layers), strict=True):
                vectors[rows.to(self.device)] = metrics.mean_pool(h[:, 1:], content)
        return out

    @torch.inference_mode()
    def retrieval_by_language(self, dev: TokenizedCorpus,
                              layers: Sequence[int]) -> dict[str, float]:
        """Sentence retrieval between the pivot (English, else the first language) and each other
        language on parallel dev sentences (row i of every language's part translates row i of
        the others): `retrieval_p1/L8/de` (both directions averaged), `retrieval_p1_en2x/L8/de`,
        `retrieval_p1_x2en/L8/de`, @5 and @10 alike, and each one's mean over the languages
        (`retrieval_p1/L8`)."""
        codes = self.languages.codes
        pivot = codes.index("en") if "en" in codes else 0
        parts = [dev.language(k) for k in range(len(codes))]
        if len({len(p) for p in parts}) != 1:
            raise ValueError(f"retrieval needs parallel dev sentences, got "
                             f"{[len(p) for p in parts]} rows for {codes}")
        vectors = [self.sentence_vectors(part, k, layers) for k, part in enumerate(parts)]
        scores: dict[str, float] = {}
        for i, layer in enumerate(layers):
            per_language: dict[str, list[float]] = {}
            for k, code in enumerate(codes):
                if k == pivot:
                    continue
                found = metrics.retrieval_scores(vectors[pivot][i], vectors[k][i])
                for name, value in _named("retrieval", found, codes[pivot], "x").items():
                    scores[f"{name}/L{layer}/{code}"] = value
                    per_language.setdefault(f"{name}/L{layer}", []).append(value)
            scores |= {name: sum(v) / len(v) for name, v in per_language.items()}
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
    found = metrics.retrieval_scores(src, tgt)
    return {f"{name}/L{layer}": value for name, value in _named(task, found, "en", "fake").items()}


def _named(task: str, scores: dict[str, float], src: str, tgt: str) -> dict[str, float]:
    """`retrieval_scores`' keys under the task and the languages: p1 → {task}_p1 (both
    directions averaged), p1_src2tgt → {task}_p1_en2fake, p1_tgt2src → {task}_p1_fake2en."""
    renamed = {"src2tgt": f"{src}2{tgt}", "tgt2src": f"{tgt}2{src}"}
    named = {}
    for key, value in scores.items():
        at, _, direction = key.partition("_")
        named[f"{task}_{at}" + (f"_{renamed[direction]}" if direction else "")] = value
    return named


def parallel_head(dev: TokenizedCorpus, n_languages: int, n: int) -> TokenizedCorpus:
    """The first `n` sentences of every language of a multilingual corpus (a lab corpus: its
    first `n`)."""
    if dev.lang is None:
        return dev.head(n)
    return TokenizedCorpus.concatenate([dev.language(k).head(n) for k in range(n_languages)])


def evaluate_real(model: PreTrainedModel, config: TrainConfig, languages: LanguageSet,
                  train: TokenizedCorpus, dev: TokenizedCorpus, layers: Sequence[int] = (0, 8),
                  device: torch.device | None = None) -> dict[str, float]:
    """The real track's numbers for one checkpoint: retrieval between English and each language
    on the parallel dev verses, and perplexity on dev and on as many training sentences of each
    language (its first ones: the same for every checkpoint)."""
    device = device or next(model.parameters()).device
    evaluator = Evaluator(model.to(device).eval(), config, languages, device)
    scores = evaluator.retrieval_by_language(dev, layers)
    per_language = len(dev.language(0))
    scores["ppl/train"] = evaluator.perplexity(parallel_head(train, len(languages), per_language))
    scores["ppl/dev"] = evaluator.perplexity(dev)
    return scores


def evaluate(model: PreTrainedModel, config: TrainConfig, languages: LanguageSet,
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
