"""The analysis: read the tracking server, build the requested tables and the training curves,
and write them into a folder (Markdown, LaTeX, CSV, PNG) that becomes an analysis run."""

from __future__ import annotations

import json
import tempfile
import textwrap
from collections.abc import Sequence
from pathlib import Path

import mlflow
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from analysis import render
from analysis.runs import pretrain_runs, search
from analysis.tables import (
    TABLE1_IDS,
    TABLE2_IDS,
    ExpGroup,
    Table,
    group_runs,
    row_key,
    table1,
    table2,
    table3,
    table4,
)
from minimult_ml import figures, tracking
from minimult_ml.errors import InputError

# Figures 6–7, one panel per Table 1 column: μ and the perplexities, then layers 0 and 8.
CURVES = {tracking.MULT_SCORE: ("μ", "multilinguality score μ"),
          tracking.PPL_TRAIN: ("perplexity, train", "perplexity (log scale)"),
          tracking.PPL_DEV: ("perplexity, dev", "perplexity (log scale)"),
          tracking.align_f1(0): ("layer 0: alignment", "alignment F1"),
          tracking.retrieval_p1(0): ("layer 0: retrieval ρ", "precision@1"),
          tracking.translation_p1(0): ("layer 0: translation τ", "precision@1"),
          tracking.align_f1(8): ("layer 8: alignment", "alignment F1"),
          tracking.retrieval_p1(8): ("layer 8: retrieval ρ", "precision@1"),
          tracking.translation_p1(8): ("layer 8: translation τ", "precision@1")}
PERPLEXITIES = (tracking.PPL_TRAIN, tracking.PPL_DEV)  # drawn on one logarithmic scale
CURVES_FILE = "curves.png"


def check_experiment(name: str) -> None:
    with tracking.server_errors():
        client = MlflowClient()
        if client.get_experiment_by_name(name) is None:
            existing = ", ".join(e.name for e in client.search_experiments()) or "none"
            raise InputError(f"experiment {name!r} does not exist on "
                             f"{mlflow.get_tracking_uri()}; pass an existing one (there: "
                             f"{existing})")


def newest_kendall_tau(experiments: list[str]) -> tuple[Run | None, dict[str, float]]:
    """The newest finished kendall-tau run and the XNLI accuracies it correlated with."""
    runs = search(experiments, "kendall-tau")
    if not runs:
        return None, {}
    run = runs[0]
    if not tracking.artifact_exists(run.info.run_id, "table4.json"):  # an older run
        return run, {}
    report = json.loads(tracking.download(run.info.run_id, "table4.json").read_text())
    return run, {lang: row["accuracy"] for lang, row in report["languages"].items()
                 if row.get("accuracy") is not None}


def draw_curves(groups: dict[str, ExpGroup], path: Path) -> Path | None:
    """Figures 6–7 for every exp with evaluated runs, overlaid on shared scales: one panel per
    Table 1 metric over the training steps, one line per exp (mean ± std over its seeds). None
    when no exp has an evaluated run."""
    order = {row_id: n for n, row_id in enumerate(dict.fromkeys(TABLE1_IDS + TABLE2_IDS))}
    drawn = sorted((g for g in groups.values() if g.chosen),  # in the tables' row order
                   key=lambda g: order.get(row_key(g), len(order)))
    if not drawn:
        return None

    def label(group: ExpGroup) -> str:
        n = len(group.chosen)
        name = row_key(group) + ("" if group.paper_id == "x" else f" {group.exp}")
        return f"{name} ({n} seed{'s' * (n > 1)})"

    panels = {title: {label(g): [run.history.get(key, {}) for run in g.chosen] for g in drawn}
              for key, (title, _) in CURVES.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    figures.training_curves(panels, path, "Multilinguality and perplexity over training "
                            "(mean ± std over seeds)",
                            ylabels={title: ylabel for title, ylabel in CURVES.values()},
                            log_scale=[CURVES[key][0] for key in PERPLEXITIES])
    return path


def build(tables: Sequence[int], experiment: str, real_experiment: str, out: Path) -> str:
    """Write table<N>.md/.tex/.csv, tables.md and figures/curves.png into `out`; returns the
    tables as terminal text (100 columns)."""
    built: list[Table] = []
    if {1, 2} & set(tables):
        check_experiment(experiment)
        groups = group_runs(pretrain_runs([experiment]))
        built += [table1(groups)] if 1 in tables else []
        built += [table2(groups)] if 2 in tables else []
        draw_curves(groups, out / "figures" / CURVES_FILE)
    if 3 in tables:
        # Transfer runs, and xnli runs from before the transfer step.
        built.append(table3(search([real_experiment], "transfer")
                            + search([real_experiment], "xnli"), real_experiment))
    if 4 in tables:
        built.append(table4(*newest_kendall_tau([experiment, real_experiment])))
    for table in built:
        (out / f"{table.name}.md").write_text(render.markdown(table), encoding="utf-8")
        (out / f"{table.name}.tex").write_text(render.latex(table), encoding="utf-8")
        (out / f"{table.name}.csv").write_text(render.csv_text(table), encoding="utf-8")
    source = (f"minimult-ml analysis: experiment {experiment} (Tables 1–2, 4), "
              f"{real_experiment} (Tables 3–4) on {mlflow.get_tracking_uri()}")
    (out / "tables.md").write_text(f"## {source}\n\n" + "\n".join(map(render.markdown, built)),
                                   encoding="utf-8")
    return "\n".join([textwrap.fill(source, render.TERMINAL_WIDTH, break_long_words=False,
                                    break_on_hyphens=False), "",
                      *map(render.terminal, built)])


def analyse(tables: Sequence[int], experiment: str | None, real_experiment: str,
            log: bool = False) -> tuple[str, str | None]:
    """The tables as terminal text, read from the tracking server; with `log`, also a new
    analysis run holding them (Markdown, LaTeX, CSV) and the curves as artifacts, and its id."""
    experiment = experiment or tracking.experiment_name()
    # Everything is built before the run exists, so a failure leaves no half-written run.
    with tempfile.TemporaryDirectory() as tmp:
        text = build(tables, experiment, real_experiment, Path(tmp))
        if not log:
            return text, None
        params = {"tables": ",".join(map(str, tables)), "experiment": experiment,
                  "real_experiment": real_experiment}
        description = (f"Tables {params['tables']} of experiment {experiment} (and "
                       f"{real_experiment}) beside the paper's numbers, with the curves.")
        with tracking.start_run("analysis", {"step": "analysis"},
                                params | tracking.provenance(), experiment,
                                description) as run, tracking.server_errors():
            mlflow.log_artifacts(tmp)
    return text, run.info.run_id
