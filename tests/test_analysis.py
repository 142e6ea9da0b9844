"""The analysis against a real tracking server: runs logged over HTTP with the same tags, params,
checkpoint folders and metric names as pretrain + evaluate, read back into Tables 1–4 whose
means and standard deviations equal a plain recomputation from the raw metrics."""

from __future__ import annotations

import math
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from analysis import render
from analysis.tables import TABLE1_COLUMNS, Cell, Row, Stat, Table
from entrypoints import analysis as analysis_entry
from entrypoints import main as main_entry
from entrypoints.common import run_command
from minimult_ml import experiments, paper, ui
from minimult_ml import tracking as tracking_lib
from minimult_ml.results import REAL_METRICS
from minimult_ml.steps.pretrain import run_params
from minimult_ml.wordorder import correlation

from .conftest import ROOT, csv_rows

METRICS = tracking_lib.TABLE1_METRICS  # as evaluate logs them


def values(seed: int, offset: float, step: int) -> dict[str, float]:
    """Distinct, reproducible numbers per metric, seed and step."""
    base = {k: (offset + 0.013 * seed + 0.0007 * i + step / 1000) % 1
            for i, k in enumerate(METRICS)}
    return base | {tracking_lib.PPL_TRAIN: 10 + 3 * seed + step / 7 + offset,
                   tracking_lib.PPL_DEV: 200 + 11 * seed - step / 3 + offset}


class Logger:
    """Logs pretrain runs as pretrain and evaluate do: tags, params, checkpoint folders and the
    evaluation metrics at checkpoint steps."""

    def __init__(self, experiment: str) -> None:
        self.client = MlflowClient()
        self.experiment_id = mlflow.set_experiment(experiment).experiment_id

    def run(self, exp: str, seed: int, checkpoints: list[int],
            evaluations: list[tuple[int, dict[str, float]]], status: str = "FINISHED",
            **overrides: object) -> str:
        config = experiments.resolve(exp, seed=seed, **overrides)
        tags = {"step": "pretrain", "exp": config.exp, "paper_id": config.paper_id,
                "seed": str(seed), "data_run_id": "d" * 32, "track": config.track}
        run_id = self.client.create_run(self.experiment_id, run_name=config.run_name,
                                        tags=tags).info.run_id
        params = run_params(config, "d" * 32, "")
        self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
        for step in checkpoints:
            self.client.log_text(run_id, "{}", f"checkpoints/step-{step}/config.json")
        for step, scores in evaluations:  # in this order: later calls get later timestamps
            now = int(time.time() * 1000)
            self.client.log_batch(run_id, metrics=[Metric(k, v, now, step)
                                                   for k, v in scores.items()])
            time.sleep(0.002)
        if status != "RUNNING":
            self.client.set_terminated(run_id, status)
        return run_id


def mean_std(xs: list[float]) -> tuple[float, float | None]:
    m = sum(xs) / len(xs)
    if len(xs) == 1:
        return m, None
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def analysis_run(experiment: str) -> str:
    exp = mlflow.get_experiment_by_name(experiment)
    runs = MlflowClient().search_runs([exp.experiment_id], "tags.step = 'analysis'")
    assert len(runs) == 1
    return runs[0].info.run_id


def test_tables_1_and_2_equal_a_recomputation_from_the_raw_metrics(
        tracking: str, mlflow_server: str, capsys: pytest.CaptureFixture) -> None:
    log = Logger(tracking)
    final = {}  # (exp, seed) → the scores the analysis must use
    # Row 0: three seeds, evaluated at steps 10 and 20 (the final checkpoint). Seed 0 also has
    # an older run, seed 2 its final checkpoint evaluated twice (the newest value counts).
    log.run("0", 0, [10, 20], [(20, values(0, 0.9, 20))])
    for seed in (0, 1, 2):
        evaluations = [(10, values(seed, 0.5, 10)), (20, values(seed, 0.5, 20))]
        if seed == 2:
            evaluations.append((20, values(seed, 0.55, 20)))
        log.run("0", seed, [10, 20], evaluations)
        final["0", seed] = evaluations[-1][1]
    # Row 8: three seeds, far lower μ (a significant difference).
    for seed in (0, 1, 2):
        scores = values(seed, 0.1, 20) | {tracking_lib.MULT_SCORE: 0.05 + 0.01 * seed}
        log.run("8", seed, [20], [(20, scores)])
        final["8", seed] = scores
    log.run("3", 0, [20], [(20, values(0, 0.2, 20))])  # one seed: too few for a t-test
    final["3", 0] = values(0, 0.2, 20)
    log.run("2", 0, [20], [(20, values(0, 0.3, 20))], epochs=50)  # other settings: left out
    log.run("2", 1, [20], [(20, values(1, 0.3, 20))])
    final["2", 1] = values(1, 0.3, 20)
    # Row 1: seed 1 evaluated on the whole dev set; seed 0, older, re-evaluated on a tenth of
    # it (retrieval among fewer candidates is easier): not averaged with it.
    log.run("1", 0, [20], [(20, values(0, 0.6, 20) | {tracking_lib.DEV_SENTENCES: 1000})])
    log.run("1", 1, [20], [(20, values(1, 0.6, 20) | {tracking_lib.DEV_SENTENCES: 10000})])
    final["1", 1] = values(1, 0.6, 20)
    log.run("4", 0, [20], [])  # trained, never evaluated
    log.run("5", 0, [10, 30], [(10, values(0, 0.4, 10))])  # the final checkpoint not evaluated
    log.run("6", 0, [10], [(10, values(0, 0.4, 10))], status="RUNNING")
    # A real-track run in the same experiment (exp original too): Table 3's, not row 0's.
    log.run("0-base", 0, [20], [(20, {k: 0.4 for k in REAL_METRICS})])

    # Printing the tables only reads: no analysis run, and only the tables asked for.
    capsys.readouterr()
    run_command(analysis_entry.command, ["--tables", "2"])
    printed = capsys.readouterr().out
    assert "Table 2:" in printed and "Table 1:" not in printed
    assert "finished run" not in printed
    experiment_id = mlflow.get_experiment_by_name(tracking).experiment_id
    assert not MlflowClient().search_runs([experiment_id], "tags.step = 'analysis'")
    # Keeping them is a choice: --log.
    run_command(analysis_entry.command, ["--tables", "1,2", "--log"])
    printed = capsys.readouterr().out
    assert "Table 1: multilinguality and model fit" in printed and "Table 2:" in printed
    assert "View experiment at" not in printed  # MLflow's own address opens the GenAI page
    assert max(map(len, printed.splitlines())) <= 100  # reads on a 100-column terminal
    assert "Smoke-sized" not in printed  # every row trained the paper's epochs
    # It ends with the address of the experiment's runs table (not MLflow 3's GenAI page).
    experiment_id = mlflow.get_experiment_by_name(tracking).experiment_id
    assert printed.splitlines()[-2:] == [
        f"The runs table of {tracking} in the MLflow UI:",
        f"  {mlflow_server}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"]
    run_id = analysis_run(tracking)
    run = MlflowClient().get_run(run_id)
    assert run.data.tags["step"] == "analysis" and run.data.params["tables"] == "1,2"
    files = {f.path for f in MlflowClient().list_artifacts(run_id)}
    assert {f"table{n}.{ext}" for n in (1, 2) for ext in ("md", "tex", "csv")} <= files
    figures = {f.path for f in MlflowClient().list_artifacts(run_id, "figures")}
    assert figures == {"figures/curves.png"}  # one figure, every exp overlaid

    table1 = csv_rows(mlflow.artifacts.load_text(f"runs:/{run_id}/table1.csv"))
    assert list(table1) == ["0", "1", "2", "4", "5", "6", "8", "3"]  # the paper's order
    for row_id, seeds in (("0", (0, 1, 2)), ("8", (0, 1, 2)), ("3", (0,)), ("2", (1,)),
                          ("1", (1,))):
        row = table1[row_id]
        assert int(row["n"]) == len(seeds)
        # CSV columns by the evaluation's (and the paper's) names, numbers from the tracked ones.
        for column, key in zip(tracking_lib.TABLE1_SCORES, METRICS, strict=True):
            mean, std = mean_std([final[row_id, s][key] for s in seeds])
            assert float(row[f"{column}_mean"]) == pytest.approx(mean, rel=1e-12)
            if std is None:
                assert row[f"{column}_std"] == ""
            else:
                assert float(row[f"{column}_std"]) == pytest.approx(std, rel=1e-12)
    assert float(table1["0"]["mult_score_paper_mean"]) == 0.70
    assert table1["0"]["mult_score_paper_std"] == ""  # the paper prints none for μ
    assert float(table1["8"]["align_f1/L0_paper_std"]) == 0.26
    # Missing rows say why, and show no numbers.
    assert table1["4"]["note"] == "no evaluated run: no evaluation (1 run)"
    assert table1["5"]["note"] == ("no evaluated run: final checkpoint (step 30) not evaluated; "
                                   "last evaluated step 10 (1 run)")
    assert table1["6"]["note"] == "no evaluated run: not finished (running) (1 run)"
    assert all(table1[i]["mult_score_mean"] == "" and table1[i]["n"] == "0"
               for i in ("4", "5", "6"))
    assert "older run of the same seed (1 run)" in table1["0"]["note"]
    assert "other settings than the newest run (1 run)" in table1["2"]["note"]
    assert "other settings than the newest run (1 run)" in table1["1"]["note"]
    # Welch's t-test of μ against row 0, recomputed from its definition.
    mu0 = [final["0", s][tracking_lib.MULT_SCORE] for s in (0, 1, 2)]
    mu8 = [final["8", s][tracking_lib.MULT_SCORE] for s in (0, 1, 2)]
    (m8, s8), (m0, s0) = mean_std(mu8), mean_std(mu0)
    t = (m8 - m0) / math.sqrt(s8 ** 2 / 3 + s0 ** 2 / 3)
    assert table1["8"]["welch_mu_vs_0"].startswith(f"t = {t:.2f}, p = ")
    assert table1["8"]["welch_mu_vs_0"].endswith(" *")
    assert table1["3"]["welch_mu_vs_0"].startswith("n too small (1 vs 3 seeds")
    assert table1["0"]["welch_mu_vs_0"] == "reference"

    table2 = csv_rows(mlflow.artifacts.load_text(f"runs:/{run_id}/table2.csv"))
    assert list(table2) == ["0", "21", "21b"]
    assert table2["0"]["mult_score_mean"] == table1["0"]["mult_score_mean"]
    assert table2["21"]["note"] == table2["21b"]["note"] == "no runs"
    assert table2["21"]["mult_score_mean"] == ""
    assert float(table2["21"]["ppl/dev_paper_mean"]) == 383
    markdown = mlflow.artifacts.load_text(f"runs:/{run_id}/table1.md")
    assert "Paper rows without runs: 7, 15, 16, 17, 9, 18, 19, 30." in markdown


def test_table3_and_table4_from_transfer_and_kendall_tau_runs(tracking: str) -> None:
    client = MlflowClient()
    real = mlflow.set_experiment(f"{tracking}-real").experiment_id
    acc = {}
    # XNLI runs from before the transfer step (step=xnli), and transfer runs of both tasks.
    for i, (paper_id, seed) in enumerate([("0-base", 1), ("0-base", 2), ("8-base", 1)]):
        tags = ({"step": "xnli"} if i < 2 else {"step": "transfer", "task": "xnli"}) | {
            "paper_id": paper_id, "seed": str(seed), "exp": "x"}
        run_id = client.create_run(real, tags=tags).info.run_id
        acc[paper_id, seed] = {"en": 0.7 + i / 100, "de": 0.5 - i / 50, "hi": 0.4 + i / 30}
        for lang, a in acc[paper_id, seed].items():
            client.log_metric(run_id, f"xnli_acc/{lang}", a)
        client.set_terminated(run_id)
    genre = {}
    for i, (paper_id, seed) in enumerate([("3-base", 1), ("3-base", 2), ("3-base", 2)]):
        tags = {"step": "transfer", "task": "bible-genre", "paper_id": paper_id,
                "seed": str(seed), "exp": "x"}
        run_id = client.create_run(real, tags=tags).info.run_id
        genre[seed] = {lang: (0.6 - i / 10 - k / 20, 0.8 - k / 50, 0.26)
                       for k, lang in enumerate(("en", "fr", "de"))}
        for lang, (zero_shot, bound, majority) in genre[seed].items():
            client.log_metric(run_id, f"genre_acc/{lang}", zero_shot)
            client.log_metric(run_id, f"genre_acc_in_language/{lang}", bound)
            client.log_metric(run_id, f"genre_acc_majority/{lang}", majority)
        client.set_terminated(run_id)
        time.sleep(0.01)  # the last run of seed 2 is the newest: the one Table 3 takes
    # Combinations the paper did not run (paper ID "x") are rows of their own, and a transfer
    # of an earlier checkpoint (the newest run of 0-base seed 1 here) is no model's accuracy.
    for exp, paper_id, checkpoint, accuracy in [("rel-pos", "x", "model", 0.61),
                                                ("lang-pos", "x", "model", 0.52),
                                                ("original", "0-base", "200", 0.99)]:
        tags = {"step": "transfer", "task": "xnli", "paper_id": paper_id, "seed": "1",
                "exp": exp}
        run_id = client.create_run(real, tags=tags).info.run_id
        client.log_param(run_id, "checkpoint", checkpoint)
        client.log_metric(run_id, "xnli_acc/en", accuracy)
        client.set_terminated(run_id)
        time.sleep(0.01)
    lab = mlflow.set_experiment(tracking).experiment_id
    tau = {"en": 1.0, "de": 0.7, "fr": 0.8, "hi": 0.55, "zh": 0.6}
    accuracy = {"en": 80.0, "de": 70.0, "fr": 72.0, "hi": 61.0, "zh": 68.0}
    run_id = client.create_run(lab, tags={"step": "kendall-tau"}).info.run_id
    for lang, t in tau.items():
        client.log_metric(run_id, f"kendall_tau/{lang}", t)
    client.log_dict(run_id, {"languages": {lang: {"tau": tau[lang], "accuracy": a}
                                           for lang, a in accuracy.items()}}, "table4.json")
    client.set_terminated(run_id)

    run_command(analysis_entry.command, ["--tables", "3,4", "--real-experiment",
                                         f"{tracking}-real", "--log", "true"])
    out = analysis_run(tracking)
    table3 = csv_rows(mlflow.artifacts.load_text(f"runs:/{out}/table3.csv"))
    assert list(table3) == ["0-base", "3-base", "3-base in-language", "8-base", "30-base",
                            "lang-pos", "rel-pos", "mBERT", "majority"]
    assert float(table3["rel-pos"]["xnli:en_mean"]) == 0.61
    assert float(table3["lang-pos"]["xnli:en_mean"]) == 0.52
    assert table3["rel-pos"]["n"] == table3["lang-pos"]["n"] == "1"
    for lang in ("en", "de", "hi"):
        mean, std = mean_std([acc["0-base", s][lang] for s in (1, 2)])
        assert float(table3["0-base"][f"xnli:{lang}_mean"]) == pytest.approx(mean, rel=1e-12)
        assert float(table3["0-base"][f"xnli:{lang}_std"]) == pytest.approx(std, rel=1e-12)
    assert table3["0-base"]["n"] == "2" and float(table3["0-base"]["xnli:de_paper_mean"]) == 0.57
    assert table3["8-base"]["n"] == "1" and table3["8-base"]["xnli:en_std"] == ""
    assert table3["30-base"]["note"].startswith("no finished transfer run")
    assert table3["mBERT"]["note"] == "published numbers only"
    assert float(table3["mBERT"]["xnli:hi_paper_mean"]) == 0.59
    # Bible genre: English first, then the other languages; the newest run per seed.
    genre_columns = [k.removesuffix("_mean") for k in table3["3-base"]
                     if k.startswith("bible-genre:") and k.endswith("_mean")
                     and "paper" not in k]
    assert genre_columns == ["bible-genre:en", "bible-genre:de", "bible-genre:fr"]
    for lang in ("en", "fr", "de"):
        for row, part in (("3-base", 0), ("3-base in-language", 1), ("majority", 2)):
            mean, std = mean_std([genre[s][lang][part] for s in (1, 2)])
            assert float(table3[row][f"bible-genre:{lang}_mean"]) == pytest.approx(mean)
            assert float(table3[row][f"bible-genre:{lang}_std"]) == pytest.approx(std, abs=1e-12)
        assert table3["3-base"][f"bible-genre:{lang}_paper_mean"] == ""
    assert table3["3-base"]["n"] == "2" and table3["3-base"]["xnli:en_mean"] == ""
    markdown = mlflow.artifacts.load_text(f"runs:/{out}/table3.md")
    assert "| Bible genre de |" in markdown and "| XNLI de |" in markdown
    assert "division of the canon" in markdown

    table4 = csv_rows(mlflow.artifacts.load_text(f"runs:/{out}/table4.csv"))
    assert float(table4["de"]["kendall_tau_mean"]) == 0.7
    assert float(table4["de"]["kendall_tau_paper_mean"]) == 0.74
    assert float(table4["hi"]["accuracy_mean"]) == 61.0
    assert table4["ar"]["kendall_tau_mean"] == ""  # not measured by this run
    with_en = correlation(tau, accuracy)
    assert float(table4["Pearson r (with en)"]["kendall_tau_mean"]) == pytest.approx(with_en.r)
    assert float(table4["Pearson r (with en)"]["kendall_tau_paper_mean"]) == 0.64
    without = correlation(tau, accuracy, ("en",))
    assert float(table4["Pearson r (without en)"]["kendall_tau_mean"]) == pytest.approx(
        without.r)


def test_an_experiment_name_in_the_environment_holds_the_real_track_too(
        tracking: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # As the steps log there: MLFLOW_EXPERIMENT_NAME replaces minimult-lab and minimult-real.
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", tracking)
    client = MlflowClient()
    experiment_id = mlflow.set_experiment(tracking).experiment_id
    tags = {"step": "transfer", "task": "xnli", "paper_id": "0-base", "seed": "1", "exp": "x"}
    run_id = client.create_run(experiment_id, tags=tags).info.run_id
    client.log_metric(run_id, "xnli_acc/de", 0.55)
    client.set_terminated(run_id)
    run_command(analysis_entry.command, ["--tables", "3", "--log", "true"])
    table3 = csv_rows(mlflow.artifacts.load_text(f"runs:/{analysis_run(tracking)}/table3.csv"))
    assert table3["0-base"]["n"] == "1"
    assert float(table3["0-base"]["xnli:de_mean"]) == 0.55


def test_empty_store_shows_missing_tables_with_reasons(tracking: str) -> None:
    mlflow.set_experiment(tracking)
    run_command(analysis_entry.command, ["--real-experiment", "nowhere", "--log"])
    out = analysis_run(tracking)
    md = mlflow.artifacts.load_text(f"runs:/{out}/tables.md")
    assert "Paper rows without runs: 0, 1, 2, 4, 5, 6, 7, 8, 15, 16, 17, 3, 9, 18, 19, 30." in md
    table3 = csv_rows(mlflow.artifacts.load_text(f"runs:/{out}/table3.csv"))
    assert table3["0-base"]["note"] == "no finished transfer run in experiment nowhere"
    assert "no finished kendall-tau run" in md


def test_cells_render_as_the_paper_prints_them() -> None:
    cell = Cell(Stat(0.7049, 0.0212, 5), 0.70, 0.02)
    assert render.cell_text(cell, "frac") == ".70±.02 [.70±.02]"
    assert render.cell_text(Cell(None, 217, 7.8), "ppl") == "– [217±7.8]"
    assert render.cell_text(Cell(Stat(3484.4, 174.2, 5), 9.04, 0.2), "ppl") == \
        "3484±174 [9.0±0.2]"
    assert render.cell_text(Cell(Stat(-0.12, None, 1)), "frac") == "-.12"
    assert render.cell_text(Cell(Stat(1.0, None, 1)), "frac") == "1.00"
    assert render.latex_escape("lang-pos;no_random & μ ± 5%") == \
        r"lang-pos;no\_random \& $\mu$ $\pm$ 5\%"


def full_table1() -> Table:
    """Table 1 with every paper row, ours at the paper's values ± a std (the widest cells)."""
    published = paper.rows("table1")
    rows = [Row(row_id, p.description,
                {c.key: Cell(Stat(p.mean[c.key], 0.05 * p.mean[c.key], 5), p.mean[c.key],
                             p.std[c.key]) for c in TABLE1_COLUMNS}, 5,
                note="left out: older run of the same seed (1 run)", test="t = -5.12, p = 0.0021 *")
            for row_id, p in published.items()]
    return Table("table1", "Table 1: multilinguality and model fit", TABLE1_COLUMNS, rows,
                 ["Cells: mean ± sample std over the row's n seeds."], welch=True)


def test_terminal_table_reads_on_100_columns() -> None:
    table = full_table1()
    text = render.terminal(table)
    lines = text.splitlines()
    assert max(map(len, lines)) <= 100
    # One block: every column beside the IDs, ours on the row's line, the paper's beneath.
    header = next(line for line in lines if line.startswith("ID"))
    assert header.split() == ["ID", "n", "μ", "L0", "F1", "L0", "ρ", "L0", "τ", "L8", "F1", "L8",
                              "ρ", "L8", "τ", "ppl", "train", "ppl", "dev"]
    row0 = lines.index(next(line for line in lines if line.startswith("0 ")))
    assert lines[row0].split() == ["0", "5", ".70±.03", "1.00±.05", ".16±.01", ".88±.04",
                                   "1.00±.05", ".97±.05", ".79±.04", "9.0±0.5", "217±10.9"]
    assert lines[row0 + 1].split() == ["paper", ".70", "1.00±.00", ".16±.02", ".88±.02",
                                       "1.00±.00", ".97±.01", ".79±.03", "9.0±0.2", "217±7.8"]
    assert "8: lang-pos;shift-special;no-random; Welch μ vs 0: t = -5.12, p = 0.0021 *; left out:" \
        in text.replace("\n    ", " ")
    # Narrower than the table: the columns that do not fit go to blocks of their own.
    narrow = render.terminal(table, width=60)
    assert max(map(len, narrow.splitlines())) <= 60
    assert sum(line.startswith("ID") for line in narrow.splitlines()) >= 2


def test_smoke_sized_runs_are_flagged(tracking: str, capsys: pytest.CaptureFixture) -> None:
    log = Logger(tracking)
    log.run("0", 42, [20], [(20, values(42, 0.5, 20))], epochs=1)
    log.run("3", 42, [20], [(20, values(42, 0.2, 20))], epochs=1)
    log.run("8", 42, [20], [(20, values(42, 0.1, 20))], max_steps=20)
    capsys.readouterr()
    run_command(analysis_entry.command, ["--tables", "1", "--log"])
    printed = capsys.readouterr().out
    assert max(map(len, printed.splitlines())) <= 100
    warning = ("Smoke-sized schedule (rows 0, 3: 1 of the paper's 100 epochs; row 8: stopped at "
               "step 20): these numbers cannot match the paper's. `mlflow run . -e main -P "
               "profile=paper` trains its schedule.")
    lines = printed.splitlines()
    start = lines.index("Table 1: multilinguality and model fit") + 1
    assert " ".join(line.strip() for line in lines[start:start + 3]).startswith(warning)
    markdown = mlflow.artifacts.load_text(f"runs:/{analysis_run(tracking)}/table1.md")
    assert f"**{warning}**" in markdown


def test_a_local_store_gets_the_command_that_serves_its_ui(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    assert ui.where_to_look("minimult-lab") == f"No experiment 'minimult-lab' on {uri} yet."
    experiment_id = mlflow.create_experiment("minimult-lab")
    monkeypatch.chdir(Path(sys.executable).parents[2])  # the virtual environment's parent
    assert ui.where_to_look("minimult-lab").splitlines() == [
        "The runs table of minimult-lab in the MLflow UI: start it with",
        f"  {Path(*Path(sys.executable).parts[-3:-1], 'mlflow')} ui --backend-store-uri {uri}",
        "and open",
        f"  http://127.0.0.1:5000/#/experiments/{experiment_id}/runs?workflowType=machine_learning"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("command", [analysis_entry.command, main_entry.command])
@pytest.mark.parametrize("uri", ["http://127.0.0.1:{port}", "nonsense://nowhere"])
def test_wrong_or_unreachable_tracking_uri_is_one_line_and_exit_2(
        command, uri: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    uri = uri.format(port=_free_port())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "anything")
    mlflow.set_tracking_uri(uri)
    with pytest.raises(SystemExit) as exit_info:
        run_command(command, ["--tables", "1"] if command is analysis_entry.command else [])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and uri in err, err


@pytest.mark.parametrize(("command", "args", "message"), [
    (analysis_entry.command, ["--tables", "5"], "give table numbers from 1,2,3,4"),
    (analysis_entry.command, ["--tables", "one"], "give table numbers"),
    (analysis_entry.command, ["--experiment", "no-such-experiment"], "does not exist on"),
    (main_entry.command, ["--seeds", "a,b"], "give integers"),
    (main_entry.command, ["--exps", ","], "is empty"),
    (main_entry.command, ["--profile", "huge"], "'huge' is not one of"),
    (main_entry.command, ["--languages", "en,de"], "languages: the lab is English + Fake-English"),
    (main_entry.command, ["--track", "real", "--languages", "de,hi"], "add en, the language"),
    (main_entry.command, ["--track", "real", "--languages", "en,xx"], "no Bible for language(s)"),
])
def test_bad_input_is_one_line_and_exit_2(command, args: list[str], message: str,
                                          tracking: str, capsys: pytest.CaptureFixture) -> None:
    mlflow.set_experiment(tracking)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_command(command, args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    # Nothing half-written: no analysis or sweep run.
    exp = mlflow.get_experiment_by_name(tracking)
    assert not MlflowClient().search_runs([exp.experiment_id])



def test_python_m_analysis_is_the_same_command() -> None:
    result = subprocess.run([sys.executable, "-m", "analysis", "--tables", "0"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: Invalid value for '--tables': '0': give table "
                                     "numbers from 1,2,3,4, like 1,2")
