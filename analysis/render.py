"""A table as Markdown (also what the terminal shows), LaTeX and CSV."""

from __future__ import annotations

import csv
import io

from analysis.tables import Cell, Table


def number(value: float, kind: str) -> str:
    """As the paper prints: fractions without the leading zero (.70), perplexities and
    percentages with one decimal."""
    if kind == "frac":
        text = f"{value:.2f}"
        return text.replace("0.", ".", 1) if abs(value) < 1 else text
    return f"{value:.1f}"


def cell_text(cell: Cell, kind: str) -> str:
    """`ours±std [paper±std]`; a missing value is `–`, and the paper's part is left out where
    the paper has no such cell."""
    def with_std(mean: float, std: float | None) -> str:
        return number(mean, kind) + ("" if std is None else f"±{number(std, kind)}")

    ours = "–" if cell.ours is None else with_std(cell.ours.mean, cell.ours.std)
    if cell.paper_mean is None:
        return ours
    return f"{ours} [{with_std(cell.paper_mean, cell.paper_std)}]"


def _header_and_rows(table: Table) -> tuple[list[str], list[list[str]]]:
    describe = any(row.description for row in table.rows)
    header = ["ID", *(["Description"] * describe), "n", *(c.header for c in table.columns),
              *(["Welch μ vs 0"] * table.welch), "Note"]
    rows = [[row.id, *([row.description] * describe), str(row.n),
             *(cell_text(row.cells[c.key], c.kind) for c in table.columns),
             *([row.test] * table.welch), row.note] for row in table.rows]
    return header, rows


def markdown(table: Table) -> str:
    header, rows = _header_and_rows(table)

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    lines = [f"### {table.title}", "", line(header), line(["---"] * len(header))]
    lines += [line(r) for r in rows]
    lines += ["", *table.notes]
    return "\n".join(lines) + "\n"


LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                 "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                 "^": r"\textasciicircum{}"}
LATEX_SYMBOLS = {"μ": r"$\mu$", "ρ": r"$\rho$", "τ": r"$\tau$", "±": r"$\pm$", "–": "--",
                 "≥": r"$\geq$", "<": r"$<$", ">": r"$>$"}


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIAL.get(ch) or LATEX_SYMBOLS.get(ch) or ch for ch in text)


def latex(table: Table) -> str:
    header, rows = _header_and_rows(table)
    spec = "l" * (len(header) - len(table.columns) - table.welch - 1) \
        + "r" * len(table.columns) + "l" * (table.welch + 1)
    lines = [r"\begin{table}", r"\centering", r"\small", f"\\begin{{tabular}}{{{spec}}}",
             r"\hline", " & ".join(latex_escape(h) for h in header) + r" \\", r"\hline"]
    lines += [" & ".join(latex_escape(c) for c in r) + r" \\" for r in rows]
    lines += [r"\hline", r"\end{tabular}",
              f"\\caption{{{latex_escape(' '.join([table.title, *table.notes]))}}}",
              r"\end{table}"]
    return "\n".join(lines) + "\n"


def csv_text(table: Table) -> str:
    """One row per table row; every number at full precision, empty where missing."""
    def value(x: float | int | None) -> str:
        return "" if x is None else repr(x)

    header = ["id", "description", "n"]
    for c in table.columns:
        header += [f"{c.key}_mean", f"{c.key}_std", f"{c.key}_paper_mean", f"{c.key}_paper_std"]
    header += [*(["welch_mu_vs_0"] * table.welch), "note"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in table.rows:
        line = [row.id, row.description, str(row.n)]
        for c in table.columns:
            cell = row.cells[c.key]
            line += [value(cell.ours.mean if cell.ours else None),
                     value(cell.ours.std if cell.ours else None),
                     value(cell.paper_mean), value(cell.paper_std)]
        line += [*([row.test] * table.welch), row.note]
        writer.writerow(line)
    return out.getvalue()
