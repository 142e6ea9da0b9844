"""Tables 1–4: runs grouped by exp, aggregated over seeds, each cell beside the paper's.

A cell holds the mean, the sample standard deviation (ddof 1, as the Welch test uses) and the
number of seeds behind it. Missing data stays missing, with the reason in the row's note.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import mlflow
from mlflow.entities import Run
from scipy.stats import ttest_ind

from minimult_ml import experiments, paper, tasks, tracking, wordorder
from minimult_ml.results import TABLE_METRICS, PretrainRun

TABLE1_IDS = tuple(paper.rows("table1"))
TABLE2_IDS = tuple(paper.rows("table2"))
TABLE3_IDS = tuple(i for i in paper.rows("table3") if i != "mBERT")
ALPHA = 0.05  # Welch test: significance level, one comparison per row against row 0


@dataclass(frozen=True)
class Stat:
    mean: float
    std: float | None  # None for a single value
    n: int


def stat(values: Sequence[float]) -> Stat | None:
    if not values:
        return None
    std = statistics.stdev(values) if len(values) > 1 else None
    return Stat(statistics.fmean(values), std, len(values))


@dataclass(frozen=True)
class Cell:
    ours: Stat | None
    paper_mean: float | None = None
    paper_std: float | None = None


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    kind: str  # how its numbers print: "frac" (.70), "ppl" (217.3), "pct" (71.1)


@dataclass
class Row:
    id: str
    description: str
    cells: dict[str, Cell]
    n: int = 0  # seeds (runs) behind the row
    note: str = ""
    test: str = ""  # Welch t-test of μ against row 0


@dataclass
class Table:
    name: str
    title: str
    columns: list[Column]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    welch: bool = False
    warning: str = ""  # printed under the title: why these numbers cannot match the paper's


# --- Tables 1 and 2: pretrain runs ------------------------------------------------------------

HEADERS = ("μ", "L0 F1", "L0 ρ", "L0 τ", "L8 F1", "L8 ρ", "L8 τ", "ppl train", "ppl dev")
# Columns are keyed by the evaluation's names (the paper's, in paper_tables.json); a run's
# numbers by their tracked names.
TABLE1_COLUMNS = [Column(key, header, "ppl" if key.startswith("ppl") else "frac")
                  for key, header in zip(tracking.TABLE1_SCORES, HEADERS, strict=True)]
TRACKED = dict(zip(tracking.TABLE1_SCORES, TABLE_METRICS, strict=True))


@dataclass
class ExpGroup:
    """The runs of one exp: the one used per seed, and why the others are left out."""

    exp: str
    paper_id: str
    chosen: list[PretrainRun]
    left_out: Counter[str]

    @property
    def mu(self) -> list[float]:
        return [r.final[tracking.MULT_SCORE] for r in self.chosen]

    def note(self) -> str:
        if not self.chosen and not self.left_out:
            return "no runs"
        reasons = "; ".join(f"{why} ({n} run{'s' * (n > 1)})" for why, n in
                            self.left_out.most_common())
        if not self.chosen:
            return f"no evaluated run: {reasons}"
        return f"left out: {reasons}" if reasons else ""


def group_runs(runs: list[PretrainRun]) -> dict[str, ExpGroup]:
    """Runs (newest first) by exp. Per seed, the newest run evaluated at its final checkpoint
    whose settings (epochs, data, …) equal those of the exp's newest evaluated run."""
    by_exp: dict[str, list[PretrainRun]] = {}
    for run in runs:
        by_exp.setdefault(run.exp, []).append(run)
    groups = {}
    for exp, members in by_exp.items():
        left_out: Counter[str] = Counter()
        evaluated = []
        for run in members:
            if (problem := run.problem) is None:
                evaluated.append(run)
            else:
                left_out[problem] += 1
        chosen: dict[int, PretrainRun] = {}
        for run in evaluated:
            if run.settings != evaluated[0].settings:
                left_out["other settings than the newest run"] += 1
            elif run.seed in chosen:
                left_out["older run of the same seed"] += 1
            else:
                chosen[run.seed] = run
        groups[exp] = ExpGroup(exp, members[0].paper_id, list(chosen.values()), left_out)
    return groups


def welch(values: list[float], reference: list[float]) -> str:
    """Welch's t-test of `values` against row 0's, as text: p and a star when p < ALPHA."""
    if len(values) < 2 or len(reference) < 2:
        return f"n too small ({len(values)} vs {len(reference)} seeds; needs ≥ 2 each)"
    result = ttest_ind(values, reference, equal_var=False)
    if math.isnan(result.pvalue):
        return "no variance in either row"
    star = " *" if result.pvalue < ALPHA else ""
    return f"t = {result.statistic:.2f}, p = {result.pvalue:.3g}{star}"


def row_key_of(paper_id: str, exp: str) -> str:
    """A row's ID: the paper's, or the exp itself for a combination the paper did not run
    (paper ID "x")."""
    return exp if paper_id == "x" else paper_id


def row_key(group: ExpGroup) -> str:
    """A group's row ID (see `row_key_of`)."""
    return row_key_of(group.paper_id, group.exp)


def shortened(group: ExpGroup) -> str:
    """How much shorter than the paper's the group's runs trained ("" when as long)."""
    params = group.chosen[0].run.data.params
    paper_epochs = experiments.resolve(group.exp).epochs
    epochs, max_steps = int(params.get("epochs", paper_epochs)), int(params.get("max_steps", 0))
    parts = [f"{epochs} of the paper's {paper_epochs} epochs"] if epochs < paper_epochs else []
    parts += [f"stopped at step {max_steps}"] if max_steps > 0 else []
    return ", ".join(parts)


def schedule_warning(groups: Sequence[ExpGroup]) -> str:
    """A warning naming the rows trained on a smoke-sized schedule, "" when there are none."""
    rows: dict[str, list[str]] = {}
    for group in groups:
        if group.chosen and (how := shortened(group)):
            rows.setdefault(how, []).append(row_key(group))
    if not rows:
        return ""
    which = "; ".join(f"row{'s' * (len(ids) > 1)} {', '.join(ids)}: {how}"
                      for how, ids in rows.items())
    return (f"Smoke-sized schedule ({which}): these numbers cannot match the paper's. "
            "`mlflow run . -e main -P profile=paper` trains its schedule.")


def pretrain_table(name: str, title: str, ids: Sequence[str], by_id: dict[str, ExpGroup],
                   paper_table: str, only_with_runs: bool) -> Table:
    published = paper.rows(paper_table)
    reference = by_id["0"].mu if "0" in by_id else []
    rows, without = [], []
    for row_id in ids:
        group = by_id.get(row_id)
        if group is None and only_with_runs:
            without.append(row_id)
            continue
        chosen = group.chosen if group else []
        p = published.get(row_id)
        cells = {c.key: Cell(stat([r.final[TRACKED[c.key]] for r in chosen]),
                             p.mean.get(c.key) if p else None, p.std.get(c.key) if p else None)
                 for c in TABLE1_COLUMNS}
        row = Row(row_id, p.description if p else group.exp, cells, len(chosen),
                  group.note() if group else "no runs")
        if chosen and row_id != "0":
            row.test = welch(group.mu, reference) if reference else "no row 0 to compare"
        elif chosen:
            row.test = "reference"
        rows.append(row)
    notes = [f"Paper rows without runs: {', '.join(without)}."] if without else []
    notes.append("Cells: mean ± sample std over the row's n seeds, and the paper's published "
                 "values.")
    warning = schedule_warning([by_id[row.id] for row in rows if row.id in by_id])
    return Table(name, title, TABLE1_COLUMNS, rows, notes, welch=True, warning=warning)


def table1(groups: dict[str, ExpGroup]) -> Table:
    # Exps outside Tables 1–2 (combinations the paper did not run) follow the paper's rows.
    by_id = {row_key(g): g for g in groups.values()}
    extra = tuple(i for i in by_id if i not in TABLE1_IDS + TABLE2_IDS)
    table = pretrain_table("table1", "Table 1: multilinguality and model fit",
                           TABLE1_IDS + extra, by_id, "table1", only_with_runs=True)
    table.notes.append(f"Welch t-test of μ against row 0 across seeds; * p < {ALPHA} "
                       "(uncorrected for multiple comparisons). The paper has no such test.")
    return table


def table2(groups: dict[str, ExpGroup]) -> Table:
    return pretrain_table("table2", "Table 2: parallel vs. non-parallel training corpus",
                          TABLE2_IDS, {row_key(g): g for g in groups.values()}, "table2",
                          only_with_runs=False)


# --- Table 3: transfer runs ----------------------------------------------------------------

def task_of(run: Run) -> tasks.Task:
    """The transfer task of a run (an xnli run from before the transfer step: XNLI)."""
    return tasks.TASKS.get(run.data.tags.get("task", "xnli"), tasks.TASKS["xnli"])


def _languages(runs: list[Run], task: tasks.Task, first: Sequence[str] = ()) -> list[str]:
    found = {lang for run in runs for lang in tracking.by_language(run.data.metrics, task.metric)}
    rest = sorted(found - set(first), key=lambda lang: (lang != "en", lang))
    return [*first, *rest]


def table3(transfer_runs: list[Run], experiment: str) -> Table:
    """Zero-shot accuracy per task and language, mean ± std over seeds, per real-track model
    (the newest run per exp, task and seed), beside the paper's XNLI numbers. For a task with
    training data in every language (bible-genre) also the majority-class baseline and each
    model's in-language bound."""
    published = paper.rows("table3")
    chosen: dict[tuple[str, str], dict[str, Run]] = {}  # (row id, task) → seed → run
    for run in transfer_runs:
        task = task_of(run)
        # A model's final weights only: a transfer of an earlier checkpoint is a point on a
        # curve, not the model's accuracy (an xnli run from before the transfer step has no
        # checkpoint param and always used the final model).
        final = run.data.params.get("checkpoint", "model") == "model"
        if final and tracking.by_language(run.data.metrics, task.metric):
            tags = run.data.tags
            key = row_key_of(tags.get("paper_id", "x"), tags.get("exp", "?"))
            chosen.setdefault((key, task.name), {}).setdefault(tags.get("seed", "?"), run)
    by_task = {name: [r for (_, t), seeds in chosen.items() if t == name for r in seeds.values()]
               for name in tasks.TASKS}
    # XNLI's columns are always there (the paper's numbers); another task's when it has runs.
    shown = [tasks.TASKS["xnli"]] + [tasks.TASKS[name] for name in by_task
                                     if name != "xnli" and by_task[name]]
    langs = {task.name: _languages(by_task[task.name], task,
                                   list(published["0-base"].mean) if task.name == "xnli" else ())
             for task in shown}
    columns = [Column(f"{task.name}:{lang}", f"{task.title} {lang}", "frac")
               for task in shown for lang in langs[task.name]]

    def cells(row_id: str, kind: str = "") -> tuple[dict[str, Cell], int]:
        """The row's cells from its runs' `kind` of accuracy, and the most seeds behind one."""
        found, n = {}, 0
        for task in shown:
            runs = list(chosen.get((row_id, task.name), {}).values())
            p = published.get(row_id) if task.name == "xnli" and not kind else None
            for lang in langs[task.name]:
                values = [m[metric] for r in runs
                          if (metric := task.accuracy(lang, kind)) in (m := r.data.metrics)]
                n = max(n, len(values))
                found[f"{task.name}:{lang}"] = Cell(stat(values), p.mean.get(lang) if p else None,
                                                    p.std.get(lang) if p else None)
        return found, n

    rows = []
    ids = (*TABLE3_IDS, *sorted({key for key, _ in chosen} - set(TABLE3_IDS)))
    for row_id in (*ids, "mBERT"):
        p = published.get(row_id)
        row_cells, n = cells(row_id)
        note = ("published numbers only" if row_id == "mBERT" else
                "" if n else f"no finished transfer run in experiment {experiment}")
        rows.append(Row(row_id, p.description if p else row_id, row_cells, n, note))
        bound, n = cells(row_id, "in_language")
        if n:
            rows.append(Row(f"{row_id} in-language", "fine-tuned and tested in each language",
                            bound, n))
    # The majority class is the same whichever model: over every run that logged it.
    majority = {f"{task.name}:{lang}": Cell(stat([
        m[task.accuracy(lang, "majority")] for r in by_task[task.name]
        if task.accuracy(lang, "majority") in (m := r.data.metrics)]))
        for task in shown for lang in langs[task.name]}
    if any(c.ours for c in majority.values()):
        rows.append(Row("majority", "always the most frequent training label", majority,
                        max(c.ours.n for c in majority.values() if c.ours)))
    notes = ["Cells: ours mean ± sample std over seeds; n = seeds. The paper's BERT-base models "
             "on XNLI in brackets, or on the `paper` line beneath.",
             "Columns by task: XNLI = English MultiNLI → XNLI test (3 classes); Bible genre = a "
             "verse's division of the canon (8 classes: " + ", ".join(tasks.TASKS[
                 "bible-genre"].labels) + "), fine-tuned on the English Bible's train chapters, "
             "tested on the test chapters of every language (zero-shot except the in-language "
             "rows)."]
    return Table("table3", "Table 3: zero-shot transfer accuracy (fine-tuned on English)",
                 columns, rows, notes)


# --- Table 4: the newest kendall-tau run ------------------------------------------------------

def table4(run: Run | None, accuracies: dict[str, float]) -> Table:
    """Kendall's tau per language beside zero-shot accuracy (XNLI, or the task the run's
    accuracies come from), and their Pearson r with and without English; `accuracies` are
    those the run correlated with (its table4.json)."""
    task = tasks.TASKS.get(run.data.params.get("accuracy_task", "xnli") if run else "xnli",
                           tasks.TASKS["xnli"])
    columns = [Column("kendall_tau", "Kendall's tau", "frac"),
               Column("accuracy", f"{task.title} acc. (%)", "pct")]
    tau = tracking.by_language(run.data.metrics, tracking.KENDALL_TAU) if run else {}
    rows = []
    for lang in list(paper.PAPER_TAU) + sorted(set(tau) - set(paper.PAPER_TAU)):
        ours_tau = Stat(tau[lang], None, 1) if lang in tau else None
        ours_acc = Stat(accuracies[lang], None, 1) if lang in accuracies else None
        cells = {"kendall_tau": Cell(ours_tau, paper.PAPER_TAU.get(lang)),
                 "accuracy": Cell(ours_acc, paper.PAPER_XNLI_ACC.get(lang))}
        rows.append(Row(lang, "", cells, int(lang in tau), "" if run else "no kendall-tau run"))
    for which, ours in wordorder.correlations(tau, accuracies).items():
        label = which.replace("_", " ")
        if isinstance(ours, wordorder.Correlation):
            r, note = Stat(ours.r, None, ours.n), f"p = {ours.p_value:.3g}, {ours.n} languages"
        else:
            r, note = None, ours
        cells = {"kendall_tau": Cell(r, paper.PAPER_PEARSON_R[which]), "accuracy": Cell(None)}
        rows.append(Row(f"Pearson r ({label})", "", cells, r.n if r else 0, note))
    source = (f"kendall-tau run {run.info.run_id} (model {run.data.params.get('model')}, "
              f"accuracies: {run.data.params.get('accuracy_source')})" if run
              else f"no finished kendall-tau run on {mlflow.get_tracking_uri()}")
    return Table("table4", f"Table 4: word order (Kendall's tau distance) and {task.title} "
                 "accuracy", columns, rows,
                 [f"Ours: {source}. The paper's (mBERT: Kendall's tau on XNLI dev, XNLI accuracy) "
                  "in brackets, or on the `paper` line beneath."])
