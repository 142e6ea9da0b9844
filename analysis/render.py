"""A table as plain text for a terminal, Markdown, LaTeX and CSV."""

from __future__ import annotations

import csv
import io
import textwrap

from analysis.tables import Cell, Table


def number(value: float, kind: str) -> str:
    """As the paper prints: fractions without the leading zero (.70), perplexities of 100 or
    more as whole numbers (217), smaller ones and percentages with one decimal."""
    if kind == "frac":
        text = f"{value:.2f}"
        return text.replace("0.", ".", 1) if abs(value) < 1 else text
    if kind == "ppl" and abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}"


def _stat_text(mean: float | None, std: float | None, kind: str) -> str:
    """`mean±std`, `mean` without a std, `–` without a mean."""
    if mean is None:
        return "–"
    return number(mean, kind) + ("" if std is None else f"±{number(std, kind)}")


def cell_text(cell: Cell, kind: str) -> str:
    """`ours±std [paper±std]`; a missing value is `–`, and the paper's part is left out where
    the paper has no such cell."""
    ours = _stat_text(cell.ours.mean, cell.ours.std, kind) if cell.ours else "–"
    if cell.paper_mean is None:
        return ours
    return f"{ours} [{_stat_text(cell.paper_mean, cell.paper_std, kind)}]"


TERMINAL_WIDTH = 100


def _blocks(widths: list[int], width: int) -> list[list[int]]:
    """Column indices (after the first, the ID, which every block repeats) cut into blocks
    that fit `width`."""
    blocks: list[list[int]] = [[]]
    used = widths[0]
    for i, w in enumerate(widths[1:], start=1):
        if blocks[-1] and used + 2 + w > width:
            blocks.append([])
            used = widths[0]
        blocks[-1].append(i)
        used += 2 + w
    return blocks


def terminal(table: Table, width: int = TERMINAL_WIDTH) -> str:
    """The table as aligned text no wider than `width`: per row a line of ours and, where
    the paper has the row, a `paper` line beneath it; columns that do not fit go to a block
    of their own. Descriptions, t-tests and notes follow as wrapped lines."""
    header = ["ID", "n", *(c.header for c in table.columns)]
    lines = [header]
    for row in table.rows:
        cells = [row.cells[c.key] for c in table.columns]
        lines.append([row.id, str(row.n), *(
            cell_text(Cell(cell.ours), c.kind) for cell, c in zip(cells, table.columns,
                                                                   strict=True))])
        if any(cell.paper_mean is not None for cell in cells):
            lines.append(["paper", "", *(
                _stat_text(cell.paper_mean, cell.paper_std, c.kind)
                for cell, c in zip(cells, table.columns, strict=True))])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    wrap = textwrap.TextWrapper(width=width, subsequent_indent="    ", break_long_words=False,
                                break_on_hyphens=False)
    out = [table.title, *wrap.wrap(table.warning)]
    for block in _blocks(widths, width):
        out.append("")
        out += ["  ".join([line[0].ljust(widths[0]), *(line[i].rjust(widths[i])
                                                       for i in block)]).rstrip()
                for line in lines]
    details = []
    for row in table.rows:
        parts = [row.description] if row.description and row.description != row.id else []
        parts += [f"Welch μ vs 0: {row.test}"] if row.test else []
        parts += [row.note] if row.note else []
        if parts:
            details += wrap.wrap(f"{row.id}: " + "; ".join(parts))
    notes = [line for note in table.notes for line in wrap.wrap(note)]
    return "\n".join(out + [""] * bool(details) + details + [""] * bool(notes) + notes) + "\n"


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

    lines = [f"### {table.title}", "", *([f"**{table.warning}**", ""] * bool(table.warning)),
             line(header), line(["---"] * len(header))]
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
    caption = " ".join(filter(None, [table.title, table.warning, *table.notes]))
    spec = "l" * (len(header) - len(table.columns) - table.welch - 1) \
        + "r" * len(table.columns) + "l" * (table.welch + 1)
    lines = [r"\begin{table}", r"\centering", r"\small", f"\\begin{{tabular}}{{{spec}}}",
             r"\hline", " & ".join(latex_escape(h) for h in header) + r" \\", r"\hline"]
    lines += [" & ".join(latex_escape(c) for c in r) + r" \\" for r in rows]
    lines += [r"\hline", r"\end{tabular}",
              f"\\caption{{{latex_escape(caption)}}}",
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
