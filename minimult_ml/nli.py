"""The XNLI task of zero-shot transfer (paper §5.1, Table 3): English NLI pairs to fine-tune on,
and each language's XNLI test pairs (`transfer` does the fine-tuning and the testing). In the
lab, Fake-English is tested on the English test set seen through Fake-English's ids.

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
from collections.abc import Sequence
from pathlib import Path

import datasets
import numpy as np

from minimult_ml.errors import InputError, reading
from minimult_ml.hub import hub_errors
from minimult_ml.parallel import read_tsv
from minimult_ml.transfer import Examples

LABELS = ("entailment", "neutral", "contradiction")  # the hub's ClassLabel order
# Spellings of the labels in the files (XNLI-MT writes "contradictory").
LABEL_IDS = {"entailment": 0, "neutral": 1, "contradiction": 2, "contradictory": 2}
# A language whose test sentences are another's: Fake-English is English with shifted ids.
TEST_TEXT_OF = {"fake-en": "en"}
XNLI = "facebook/xnli"


def _examples(rows: list[tuple[str, str, str | int]], source: str) -> Examples:
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
    return Examples(premises, np.array(labels, dtype=np.int64), hypotheses)


def _hub(config: str, split: str) -> datasets.Dataset:
    with hub_errors(f"{XNLI} ({config}, {split}) from the Hugging Face hub",
                    "check the network, or pass train=multinli:PATH or xnli-mt:PATH and "
                    "test=xnli-tsv:PATH"):
        return datasets.load_dataset(XNLI, config, split=split)


def load_train(spec: str) -> Examples:
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
    with reading(path), path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
                rows.append((r["sentence1"], r["sentence2"], r["gold_label"]))
            except (json.JSONDecodeError, KeyError, TypeError):
                raise InputError(f"{path} line {n} is not a MultiNLI record (JSON with "
                                 "sentence1, sentence2, gold_label)") from None
    return rows


def load_test(spec: str, languages: Sequence[str]) -> dict[str, Examples]:
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
