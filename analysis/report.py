"""The analysis: read the tracking server, build the requested tables and the training curves,
and write them into a folder (Markdown, LaTeX, CSV, PNG) that becomes an analysis run."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

import mlflow
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from analysis import render
from analysis.runs import pretrain_runs, search
from analysis.tables import (
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

TABLES = (1, 2, 3, 4)
# Figures 6–7: the μ components and the perplexities over training steps.
CURVES = {"multilinguality": {"μ": tracking.MULT_SCORE, "τ L0": tracking.translation_p1(0),
                              "τ L8": tracking.translation_p1(8), "ρ L0": tracking.retrieval_p1(0),
                              "ρ L8": tracking.retrieval_p1(8)},
          "perplexity": {"train": tracking.PPL_TRAIN, "dev": tracking.PPL_DEV}}


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
    try:
        report = json.loads(tracking.download(run.info.run_id, "table4.json").read_text())
    except (MlflowException, OSError):  # an older run without the file: no accuracies
        return run, {}
    return run, {lang: row["accuracy"] for lang, row in report["languages"].items()
                 if row.get("accuracy") is not None}


def curve_name(row_id: str) -> str:
    return "curves_" + "".join(ch if ch.isalnum() or ch in "-." else "+" for ch in row_id)


def draw_curves(groups: dict[str, ExpGroup], folder: Path) -> list[Path]:
    """One PNG per exp with evaluated runs: Figure 6 is rows 0 and 15, Figure 7 row 30."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for group in groups.values():
        if not group.chosen:
            continue
        panels = {panel: {label: [run.history.get(key, {}) for run in group.chosen]
                          for label, key in series.items()}
                  for panel, series in CURVES.items()}
        path = folder / f"{curve_name(row_key(group))}.png"
        n = len(group.chosen)
        figures.training_curves(panels, path, f"{row_key(group)} {group.exp}: mean ± std over "
                                f"{n} seed{'s' * (n > 1)}", log_scale=("perplexity",))
        written.append(path)
    return written


def build(tables: Sequence[int], experiment: str, real_experiment: str, out: Path) -> str:
    """Write table<N>.md/.tex/.csv, tables.md and figures/curves_<ID>.png into `out`; returns
    the Markdown of all tables."""
    built: list[Table] = []
    if {1, 2} & set(tables):
        check_experiment(experiment)
        groups = group_runs(pretrain_runs([experiment]))
        built += [table1(groups)] if 1 in tables else []
        built += [table2(groups)] if 2 in tables else []
        draw_curves(groups, out / "figures")
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
    text = (f"## minimult-ml analysis: experiment {experiment} (Tables 1–2, 4), "
            f"{real_experiment} (Tables 3–4) on {mlflow.get_tracking_uri()}\n\n"
            + "\n".join(render.markdown(t) for t in built))
    (out / "tables.md").write_text(text, encoding="utf-8")
    return text


def analyse(tables: Sequence[int], experiment: str | None, real_experiment: str,
            log: bool = False) -> tuple[str, str | None]:
    """The Markdown of `tables`, read from the tracking server; with `log`, also a new analysis
    run holding them (Markdown, LaTeX, CSV) and the curves as artifacts, and its id."""
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
