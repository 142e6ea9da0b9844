"""The paper's published numbers (Tables 1–4), transcribed once into `paper_tables.json`.

Everything that compares with the paper reads them from here: the analysis tables, and
`kendall-tau -P accuracies=paper` (mBERT's XNLI accuracies of Table 4).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

DATA_FILE = Path(__file__).with_name("paper_tables.json")
_DATA = json.loads(DATA_FILE.read_text(encoding="utf-8"))

# Table 4: Kendall's tau distance per language (XNLI dev, mBERT alignments) and mBERT's XNLI
# zero-shot accuracy in percent, as printed; Appendix B.2's Pearson r between them.
PAPER_TAU: dict[str, float] = _DATA["table4"]["kendall_tau"]
PAPER_XNLI_ACC: dict[str, float] = _DATA["table4"]["xnli_acc"]
PAPER_PEARSON_R: dict[str, float] = _DATA["table4"]["pearson_r"]


class PaperRow(NamedTuple):
    description: str
    mean: dict[str, float]
    std: dict[str, float | None]  # None where the paper prints no standard deviation


def rows(table: str) -> dict[str, PaperRow]:
    """The rows of `table1`, `table2` or `table3` by ID, each value keyed by its column (a
    metric name, or a language code in Table 3)."""
    spec = _DATA[table]
    columns = spec["columns"]
    found = {}
    for row_id, row in spec["rows"].items():
        std = row.get("std", [None] * len(columns))
        found[row_id] = PaperRow(row["description"], dict(zip(columns, row["mean"], strict=True)),
                                 dict(zip(columns, std, strict=True)))
    return found
