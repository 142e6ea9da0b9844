"""The transcription of the paper's Tables 1–4 (minimult_ml/paper_tables.json) against the paper's
own text, parsed here independently of the data file.

tests/fixtures/paper_tables.txt holds the paper's table lines verbatim (paper.txt line numbers in
its section headers), so the check runs on a clean clone; where the team's copy of the paper is
present, the excerpt is checked against it line by line.
"""

from __future__ import annotations

import re
from pathlib import Path

from minimult_ml import paper
from minimult_ml.tracking import TABLE1_SCORES as TABLE_METRICS

from .conftest import ROOT

EXCERPT = ROOT / "tests" / "fixtures" / "paper_tables.txt"
PAPER_TXT = Path("/work/shared/paper.txt")
NUMBER = re.compile(r"^\d*\.?\d+$")


def sections() -> dict[tuple[int, int], list[str]]:
    found: dict[tuple[int, int], list[str]] = {}
    current: list[str] = []
    for line in EXCERPT.read_text(encoding="utf-8").splitlines():
        if m := re.fullmatch(r"==== paper.txt lines (\d+)-(\d+) ====", line):
            current = found.setdefault((int(m[1]), int(m[2])), [])
        else:
            current.append(line)
    return found


def numeric_rows(lines: list[str], count: int) -> dict[str, tuple[str, list[float]]]:
    """Lines ending in `count` numbers: ID → (description, numbers)."""
    rows = {}
    for line in lines:
        words = line.split()
        if len(words) > count and all(NUMBER.match(w) for w in words[-count:]):
            rows[words[0]] = (" ".join(words[1:-count]), [float(w) for w in words[-count:]])
    return rows


def block(first_line: str) -> list[str]:
    return next(lines for lines in sections().values() if lines[0].strip() == first_line)


def test_excerpt_is_verbatim_from_the_paper() -> None:
    found = sections()
    assert len(found) == 4 and all(len(lines) == b - a + 1 for (a, b), lines in found.items())
    if PAPER_TXT.exists():  # the team's copy; a clean clone elsewhere has only the excerpt
        text = PAPER_TXT.read_text(encoding="utf-8").splitlines()
        for (a, b), lines in found.items():
            assert text[a - 1:b] == lines


def test_table1_every_cell() -> None:
    lines = block("Mult.- Layer 0 Layer 8 MLM-")
    table1 = lines[:lines.index(next(x for x in lines if x.startswith("Table 1:")))]
    parsed = numeric_rows(table1, 17)
    transcribed = paper.rows("table1")
    assert list(parsed) == list(transcribed)  # all 16 rows, in the paper's order
    for row_id, (description, numbers) in parsed.items():
        row = transcribed[row_id]
        assert row.description == description
        # μ has no standard deviation; every other column is a (mean, std) pair.
        assert row.mean["mult_score"] == numbers[0] and row.std["mult_score"] is None
        for i, key in enumerate(TABLE_METRICS[1:]):
            assert (row.mean[key], row.std[key]) == (numbers[1 + 2 * i], numbers[2 + 2 * i]), \
                (row_id, key)
    assert transcribed["18"].mean["ppl/dev"] == 4128 and transcribed["18"].std["ppl/dev"] == 42.7


def test_table2_every_cell() -> None:
    lines = block("Mult.- Layer 0 Layer 8 MLM-")
    start = next(i for i, x in enumerate(lines) if x.startswith("Table 1:"))
    parsed = numeric_rows(lines[start:], 9)
    transcribed = paper.rows("table2")
    assert list(parsed) == ["0", "21", "21b"] == list(transcribed)
    for row_id, (description, numbers) in parsed.items():
        assert transcribed[row_id].description == description
        assert [transcribed[row_id].mean[k] for k in TABLE_METRICS] == numbers
        assert all(v is None for v in transcribed[row_id].std.values())


def test_table3_every_cell() -> None:
    lines = block("ID Description ENG DEU HIN")
    transcribed = paper.rows("table3")
    models = numeric_rows(lines, 6)
    assert list(models) == ["0-base", "3-base", "8-base", "30-base"]
    for row_id, (description, n) in models.items():
        row = transcribed[row_id]
        assert row.description == description
        assert [row.mean["en"], row.std["en"], row.mean["de"], row.std["de"], row.mean["hi"],
                row.std["hi"]] == n
    mbert = numeric_rows(lines, 3)["mBERT"]
    assert [transcribed["mBERT"].mean[lang] for lang in ("en", "de", "hi")] == mbert[1]


def test_table4_and_its_pearson_r() -> None:
    lines = block("Lang. Kendall’s Tau Distance XNLI Acc.")
    parsed = numeric_rows(lines, 2)
    assert len(parsed) == 15
    assert {lang: n[0] for lang, (_, n) in parsed.items()} == paper.PAPER_TAU
    assert {lang: n[1] for lang, (_, n) in parsed.items()} == paper.PAPER_XNLI_ACC
    text = " ".join(next(v for (a, _), v in sections().items() if a == 1156))
    without, with_en = (int(x) / 100 for x in re.findall(r"(\d+)%", text))
    assert {"with_en": with_en, "without_en": without} == paper.PAPER_PEARSON_R


def test_kendall_tau_reads_the_same_transcription() -> None:
    from minimult_ml.steps import kendall_tau

    acc, source = kendall_tau.load_accuracies("paper")
    assert acc == paper.PAPER_XNLI_ACC and "Table 4" in source
