"""Zero-shot cross-lingual transfer (paper §5.1, Table 3): fine-tune a pretrained checkpoint on a
labelled task in one language, then test it on every language without training in that language.

A task is sentences (or sentence pairs, as in NLI) with a label from a fixed set. Every
language's sentences go through that language's own tokenizer and the run's transforms (lang-pos
positions and token types, shift-special, inv-order of each segment), exactly as in pretraining:
an example is [CLS] text [SEP] (or [CLS] premise [SEP] hypothesis [SEP]) in the language's local
ids, and `build_inputs` turns it into what BERT reads. The tasks themselves (their data and
labels) live in `nli` (XNLI) and `genre` (the Bibles' divisions of the canon).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence
from transformers import (
    AutoModelForSequenceClassification,
    EvalPrediction,
    PreTrainedModel,
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)

from minimult_ml.errors import InputError, check_seed
from minimult_ml.hub import without_load_report
from minimult_ml.inputs import InputConfig, build_inputs
from minimult_ml.languages import PAD
from minimult_ml.vocab import Tokenizers

Log = Callable[[dict[str, float], int], None]


@dataclass(frozen=True)
class Examples:
    """Labelled examples of one language: single sentences, or sentence pairs when `pairs` is
    given (NLI's premise in `texts`, hypothesis in `pairs`)."""

    texts: list[str]
    labels: np.ndarray  # int64 indices into the task's labels
    pairs: list[str] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, n: int) -> Examples:
        return Examples(self.texts[:n], self.labels[:n], None if self.pairs is None
                        else self.pairs[:n])

    def sample(self, n: int, seed: int) -> Examples:
        """`n` examples drawn without replacement (all of them when n ≥ len), in their order."""
        if n >= len(self):
            return self
        rows = np.sort(np.random.default_rng(seed).choice(len(self), n, replace=False))
        return Examples([self.texts[i] for i in rows], self.labels[rows],
                        None if self.pairs is None else [self.pairs[i] for i in rows])


class LanguageCollator:
    """Pads one language's local ids and applies the run's transforms, as pretraining did."""

    def __init__(self, tokenizers: Tokenizers, config: InputConfig, code: str) -> None:
        self.tokenizers, self.config = tokenizers, config
        self.lang = tokenizers.languages.index(code)

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        local = pad_sequence([torch.tensor(f["input_ids"]) for f in features], batch_first=True,
                             padding_value=PAD)
        lang = torch.full((len(local),), self.lang)
        inputs = build_inputs(local, lang, self.tokenizers.languages, self.config)
        inputs["labels"] = torch.tensor([f["label"] for f in features])
        return inputs


def encode(tokenizers: Tokenizers, code: str, examples: Examples) -> datasets.Dataset:
    """Language `code`'s local ids of each example (≤ 128, longest segment first truncated)
    and its label."""
    ids = tokenizers.local_ids(code, examples.texts, examples.pairs)
    return datasets.Dataset.from_dict({"input_ids": ids, "label": examples.labels.tolist()})


@dataclass(frozen=True)
class FinetuneConfig:
    """Devlin et al.'s recipe, as the paper used it (§5.1)."""

    epochs: float = 3.0
    batch_size: int = 32
    lr: float = 2e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    seed: int = 42
    log_every: int = 50

    def validate(self) -> None:
        check_seed(self.seed)
        if not (self.epochs > 0 and self.batch_size > 0 and self.lr > 0):
            raise InputError(f"epochs, batch_size and lr must be positive, got {self.epochs}, "
                             f"{self.batch_size}, {self.lr}")


class _LogTo(TrainerCallback):
    def __init__(self, log: Log, prefix: str) -> None:
        self.log, self.prefix = log, prefix

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, float] | None = None, **kwargs: object) -> None:
        values = {f"{self.prefix}/{k}": v for k, v in (logs or {}).items()
                  if isinstance(v, int | float) and math.isfinite(v)}
        if values:
            self.log(values, state.global_step)


def _accuracy(prediction: EvalPrediction) -> dict[str, float]:
    return {"accuracy": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())}


def finetune(checkpoint: str | Path, tokenizers: Tokenizers, inputs: InputConfig, train: Examples,
             num_labels: int, config: FinetuneConfig, device: torch.device,
             dev: Examples | None = None, language: str = "en",
             log: Log = lambda metrics, step: None,
             log_prefix: str = "finetune") -> PreTrainedModel:
    """The checkpoint's sequence classifier (BERT's, or RoFormer's under rel-pos), fine-tuned
    on `train` in `language` with the Hugging Face Trainer (AdamW, linear warmup and decay).
    With `dev`, the
    model is evaluated on it after every epoch and the most accurate epoch's is returned (model
    selection on the dev set, never on the test languages)."""
    config.validate()
    if language not in tokenizers.languages.codes:
        raise InputError(f"the model's languages are {', '.join(tokenizers.languages.codes)}: "
                         f"fine-tuning is in {language}, so {language} must be one of them")
    with without_load_report():
        model = AutoModelForSequenceClassification.from_pretrained(checkpoint,
                                                                   num_labels=num_labels)
    cuda = device.type == "cuda"
    select = "epoch" if dev is not None else "no"
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp, num_train_epochs=config.epochs,
            per_device_train_batch_size=config.batch_size, per_device_eval_batch_size=128,
            learning_rate=config.lr, weight_decay=config.weight_decay,
            warmup_steps=config.warmup_ratio,  # < 1: a ratio
            seed=config.seed, logging_steps=config.log_every, eval_strategy=select,
            save_strategy=select, save_total_limit=1 if dev is not None else None,
            load_best_model_at_end=dev is not None, metric_for_best_model="accuracy",
            report_to="none", bf16=cuda, use_cpu=not cuda, remove_unused_columns=False,
            disable_tqdm=True)
        collate = LanguageCollator(tokenizers, inputs, language)
        trainer = Trainer(model=model, args=args, train_dataset=encode(tokenizers, language, train),
                          eval_dataset=None if dev is None else encode(tokenizers, language, dev),
                          data_collator=collate, compute_metrics=_accuracy,
                          callbacks=[_LogTo(log, log_prefix)])
        trainer.train()
    return trainer.model


@torch.inference_mode()
def predict(model: PreTrainedModel, tokenizers: Tokenizers, inputs: InputConfig,
            code: str, examples: Examples, device: torch.device,
            batch_size: int = 128) -> np.ndarray:
    """Predicted label indices for language `code`'s examples (batched by length)."""
    data = encode(tokenizers, code, examples)
    collate = LanguageCollator(tokenizers, inputs, code)
    order = np.argsort([len(ids) for ids in data["input_ids"]], kind="stable")
    predictions = np.empty(len(data), dtype=np.int64)
    model.to(device).eval()
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        batch = collate([data[int(i)] for i in rows])
        batch.pop("labels")
        logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
        predictions[rows] = logits.argmax(-1).cpu().numpy()
    return predictions


def confusion(labels: np.ndarray, predictions: np.ndarray, num_labels: int) -> np.ndarray:
    """[gold, predicted] counts over the task's labels."""
    n = num_labels
    return np.bincount(labels * n + predictions, minlength=n * n).reshape(n, n)


def majority_label(train: Examples) -> int:
    """The most frequent training label (the lowest index among ties)."""
    return int(np.bincount(train.labels).argmax())


def test(model: PreTrainedModel, tokenizers: Tokenizers, inputs: InputConfig,
         test_sets: dict[str, Examples], num_labels: int, device: torch.device,
         majority: int | None = None) -> dict[str, dict]:
    """Per language: accuracy, number of examples and the confusion matrix ([gold, predicted]);
    with `majority` (a label index) also the accuracy of always predicting it."""
    report = {}
    for code, examples in test_sets.items():
        predicted = predict(model, tokenizers, inputs, code, examples, device)
        report[code] = {"accuracy": float((predicted == examples.labels).mean()),
                        "examples": len(examples),
                        "confusion": confusion(examples.labels, predicted, num_labels).tolist()}
        if majority is not None:
            report[code]["majority"] = float((examples.labels == majority).mean())
    return report


def check_languages(languages: Sequence[str], known: Sequence[str], source: str = "en") -> None:
    """The tested languages must be the model's, and the fine-tuning language among them."""
    unknown = [c for c in languages if c not in known]
    if unknown:
        raise InputError(f"languages {', '.join(unknown)}: the model knows {', '.join(known)}")
    if source not in known:
        raise InputError(f"the model's languages are {', '.join(known)}: fine-tuning is in "
                         f"{source}, so the pretrain run must have {source}; prepare it with "
                         f"languages={source},…")
