"""XNLI zero-shot transfer (paper §5.1, Table 3): fine-tune a pretrained checkpoint on English NLI,
then test it on every language without any training in that language.

Every language's sentences go through that language's own tokenizer and the run's transforms
(lang-pos positions and token types, shift-special, inv-order of each segment), exactly as in
pretraining: a pair is [CLS] premise [SEP] hypothesis [SEP] in the language's local ids, and
`build_inputs` turns it into what BERT reads. In the lab, Fake-English is tested on the English
test set seen through Fake-English's ids.

Data, by spec:
  train  hub          facebook/xnli, config "en", split train (MultiNLI's training set)
         multinli:PATH  MultiNLI jsonl (sentence1, sentence2, gold_label; "-" rows skipped)
         xnli-mt:PATH   XNLI-MT's multinli.train.<lang>.tsv (premise, hypo, label)
  test   hub          facebook/xnli, each language's config, split test
         xnli-tsv:PATH  XNLI-1.0's xnli.test.tsv or xnli.dev.tsv (language, gold_label,
                        sentence1, sentence2, …)
"""

from __future__ import annotations

import json
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
    PreTrainedModel,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from minimult_ml.errors import InputError, check_seed
from minimult_ml.inputs import InputConfig, build_inputs
from minimult_ml.languages import PAD
from minimult_ml.parallel import read_tsv
from minimult_ml.vocab import Tokenizers

LABELS = ("entailment", "neutral", "contradiction")  # the hub's ClassLabel order
# Spellings of the labels in the files (XNLI-MT writes "contradictory").
LABEL_IDS = {"entailment": 0, "neutral": 1, "contradiction": 2, "contradictory": 2}
# A language whose test sentences are another's: Fake-English is English with shifted ids.
TEST_TEXT_OF = {"fake-en": "en"}
XNLI = "facebook/xnli"


@dataclass(frozen=True)
class NliExamples:
    premises: list[str]
    hypotheses: list[str]
    labels: np.ndarray  # int64 indices into LABELS

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, n: int) -> NliExamples:
        return NliExamples(self.premises[:n], self.hypotheses[:n], self.labels[:n])


def _examples(rows: list[tuple[str, str, str | int]], source: str) -> NliExamples:
    premises, hypotheses, labels = [], [], []
    for premise, hypothesis, label in rows:
        if isinstance(label, str):
            if label == "-":  # MultiNLI: annotators did not agree
                continue
            if label not in LABEL_IDS:
                raise InputError(f"{source}: unknown label {label!r}; expected one of "
                                 f"{', '.join(LABELS)}")
            label = LABEL_IDS[label]
        premises.append(premise)
        hypotheses.append(hypothesis)
        labels.append(label)
    if not labels:
        raise InputError(f"{source} has no labelled sentence pairs")
    return NliExamples(premises, hypotheses, np.array(labels, dtype=np.int64))


def _hub(config: str, split: str) -> datasets.Dataset:
    try:
        return datasets.load_dataset(XNLI, config, split=split)
    except Exception as e:  # offline, hub trouble: fixed by the local formats
        reason = (str(e).splitlines() or [""])[0]
        raise InputError(f"could not load {XNLI} ({config}, {split}) from the Hugging Face hub "
                         f"({type(e).__name__}: {reason}); check the network, or pass "
                         f"train=multinli:PATH or xnli-mt:PATH and test=xnli-tsv:PATH") from None


def load_train(spec: str) -> NliExamples:
    """English NLI training pairs from a train spec (module docstring)."""
    kind, _, path = spec.partition(":")
    if kind == "hub" and not path:
        rows = _hub("en", "train")
        return _examples(list(zip(rows["premise"], rows["hypothesis"], rows["label"],
                                  strict=True)), f"{XNLI} en train")
    if kind == "multinli" and path:
        return _examples(_jsonl_rows(Path(path)), path)
    if kind == "xnli-mt" and path:
        rows = read_tsv(Path(path), ("premise", "hypo", "label"),
                        "XNLI-MT's multinli.train.<lang>.tsv")
        return _examples([(r["premise"], r["hypo"], r["label"]) for r in rows], path)
    raise InputError(f"unknown train data {spec!r}: use hub, multinli:PATH (MultiNLI jsonl) or "
                     f"xnli-mt:PATH (XNLI-MT train tsv)")


def _jsonl_rows(path: Path) -> list[tuple[str, str, str]]:
    if not path.is_file():
        raise InputError(f"no MultiNLI file at {path}: pass multinli_1.0_train.jsonl")
    rows = []
    try:
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    r = json.loads(line)
                    rows.append((r["sentence1"], r["sentence2"], r["gold_label"]))
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise InputError(f"{path} line {n} is not a MultiNLI record (JSON with "
                                     "sentence1, sentence2, gold_label)") from None
    except UnicodeDecodeError as e:
        raise InputError(f"{path} is not UTF-8 text ({e.reason}): save it as UTF-8") from None
    return rows


def load_test(spec: str, languages: Sequence[str]) -> dict[str, NliExamples]:
    """Each language's test pairs from a test spec (Fake-English reads English's)."""
    kind, _, path = spec.partition(":")
    wanted = {lang: TEST_TEXT_OF.get(lang, lang) for lang in languages}
    if kind == "hub" and not path:
        out = {}
        for lang, text in wanted.items():
            rows = _hub(text, "test")
            out[lang] = _examples(list(zip(rows["premise"], rows["hypothesis"], rows["label"],
                                           strict=True)), f"{XNLI} {text} test")
        return out
    if kind == "xnli-tsv" and path:
        rows = read_tsv(Path(path), ("language", "gold_label", "sentence1", "sentence2"),
                        "XNLI-1.0's xnli.test.tsv")
        present = sorted({r["language"] for r in rows})
        missing = sorted({text for text in wanted.values() if text not in present})
        if missing:
            raise InputError(f"language(s) {', '.join(missing)} not in {path}; it has "
                             f"{', '.join(present)}")
        return {lang: _examples([(r["sentence1"], r["sentence2"], r["gold_label"])
                                 for r in rows if r["language"] == text], f"{path} ({text})")
                for lang, text in wanted.items()}
    raise InputError(f"unknown test data {spec!r}: use hub or xnli-tsv:PATH (XNLI-1.0 tsv)")


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


def encode(tokenizers: Tokenizers, code: str, examples: NliExamples) -> datasets.Dataset:
    """Language `code`'s local ids of each pair (≤ 128, longest first truncated) and labels."""
    tok = tokenizers.by_language[code]
    ids = tok(examples.premises, examples.hypotheses, truncation=True,
              max_length=tok.model_max_length)["input_ids"]
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
    def __init__(self, log: Callable[[dict[str, float], int], None]) -> None:
        self.log = log

    def on_log(self, args, state, control, logs=None, **kwargs) -> None:
        values = {f"finetune/{k}": v for k, v in (logs or {}).items()
                  if isinstance(v, int | float) and math.isfinite(v)}
        if values:
            self.log(values, state.global_step)


def finetune(checkpoint: Path, tokenizers: Tokenizers, inputs: InputConfig, train: NliExamples,
             config: FinetuneConfig, device: torch.device,
             log: Callable[[dict[str, float], int], None] = lambda metrics, step: None,
             ) -> PreTrainedModel:
    """The checkpoint's sequence classifier (BERT's, or RoFormer's under rel-pos), fine-tuned on
    English NLI with the Hugging Face Trainer (AdamW, linear warmup and decay)."""
    config.validate()
    if "en" not in tokenizers.languages.codes:
        raise InputError(f"the model's languages are {', '.join(tokenizers.languages.codes)}: "
                         "fine-tuning is on English NLI, so English must be one of them")
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint, num_labels=len(LABELS))
    cuda = device.type == "cuda"
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp, num_train_epochs=config.epochs,
            per_device_train_batch_size=config.batch_size, learning_rate=config.lr,
            weight_decay=config.weight_decay, warmup_steps=config.warmup_ratio,  # < 1: a ratio
            seed=config.seed, logging_steps=config.log_every, save_strategy="no",
            report_to="none", bf16=cuda, use_cpu=not cuda, remove_unused_columns=False,
            disable_tqdm=True)
        trainer = Trainer(model=model, args=args, train_dataset=encode(tokenizers, "en", train),
                          data_collator=LanguageCollator(tokenizers, inputs, "en"),
                          callbacks=[_LogTo(log)])
        trainer.train()
    return trainer.model


@torch.inference_mode()
def predict(model: PreTrainedModel, tokenizers: Tokenizers, inputs: InputConfig,
            code: str, examples: NliExamples, device: torch.device,
            batch_size: int = 128) -> np.ndarray:
    """Predicted label indices for language `code`'s pairs (batched by length)."""
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


def confusion(labels: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """[gold, predicted] counts over LABELS."""
    n = len(LABELS)
    return np.bincount(labels * n + predictions, minlength=n * n).reshape(n, n)


def zero_shot(model: PreTrainedModel, tokenizers: Tokenizers, inputs: InputConfig,
              test: dict[str, NliExamples], device: torch.device) -> dict[str, dict]:
    """Per language: accuracy, number of pairs and the confusion matrix ([gold, predicted])."""
    report = {}
    for code, examples in test.items():
        predicted = predict(model, tokenizers, inputs, code, examples, device)
        report[code] = {"accuracy": float((predicted == examples.labels).mean()),
                        "pairs": len(examples),
                        "confusion": confusion(examples.labels, predicted).tolist()}
    return report
