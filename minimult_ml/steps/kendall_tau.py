"""The kendall-tau step: an encoder and parallel sentences → its run (paper App. B.2, Table 4).

Aligns English with each language (Match on the encoder's word vectors), scores every sentence
pair with Kendall's tau distance, and correlates the per-language means with XNLI accuracies
(Pearson r, with and without English).
"""

from __future__ import annotations

import csv
import json
import math
import tempfile
import time
from pathlib import Path

import click
import mlflow

from minimult_ml import bibles, figures, paper, tasks, tracking, wordorder
from minimult_ml.errors import InputError, reading
from minimult_ml.parallel import load_parallel
from minimult_ml.representations import load_encoder
from minimult_ml.steps import runs
from minimult_ml.steps.transfer import bible_split, checkpoint_folder
from minimult_ml.wordorder import Correlation

STEP = "kendall-tau"


def load_accuracies(spec: str) -> tuple[dict[str, float], str]:
    """Zero-shot accuracy per language in percent, and where it comes from: `paper`,
    `xnli-runs`, `transfer:RUN_ID` (a transfer run, any task) or `csv:PATH`."""
    if spec == "paper":
        return dict(paper.PAPER_XNLI_ACC), "paper Table 4 (mBERT)"
    if spec == "xnli-runs":
        return xnli_run_accuracies()
    kind, _, path = spec.partition(":")
    if kind == "csv" and path:
        return read_accuracy_csv(Path(path)), f"csv {path}"
    if kind == "transfer" and path:
        return transfer_run_accuracies(path)
    raise InputError(f"unknown accuracies {spec!r}: use paper, xnli-runs, transfer:RUN_ID or "
                     "csv:PATH (a CSV with header lang,accuracy)")


def accuracy_task(spec: str) -> str:
    """The task of the accuracies `spec` names: that of a transfer run, else XNLI."""
    kind, _, run_id = spec.partition(":")
    if kind == "transfer" and run_id:
        return tracking.get_run(run_id, "transfer").data.tags.get("task", "xnli")
    return "xnli"


def transfer_run_accuracies(run_id: str) -> tuple[dict[str, float], str]:
    """A transfer run's zero-shot accuracies, in percent as the paper prints them."""
    run = tracking.get_run(run_id, "transfer")
    task = tasks.task(run.data.tags.get("task", "xnli"))
    acc = tracking.by_language(run.data.metrics, task.metric)
    if run.info.status != "FINISHED" or not acc:
        raise InputError(f"transfer run {run_id} is not finished or has no {task.metric}<lang> "
                         "metrics; pass a finished transfer run")
    return {lang: 100 * a for lang, a in acc.items()}, f"transfer run {run_id} ({task.name})"


def xnli_run_accuracies() -> tuple[dict[str, float], str]:
    """The `xnli_acc/<lang>` metrics (fractions) of the newest finished XNLI run of the real
    track (a transfer run of task xnli, or an xnli run from before the transfer step), in
    percent as the paper prints them."""
    experiment = runs.experiment_of("real")
    found = sorted(tracking.find_runs("transfer", {"task": "xnli"}, experiment)
                   + tracking.find_runs("xnli", {}, experiment),
                   key=lambda r: r.info.start_time, reverse=True)
    if not found:
        raise InputError(f"no finished xnli run in experiment {experiment} on "
                         f"{mlflow.get_tracking_uri()}: run the xnli entry point first, or pass "
                         f"accuracies=paper or accuracies=csv:PATH")
    run = found[0]
    metric = tasks.task("xnli").metric
    acc = tracking.by_language(run.data.metrics, metric)
    if not acc:
        raise InputError(f"xnli run {run.info.run_id} has no {metric}<lang> metrics; "
                         f"pass accuracies=paper or accuracies=csv:PATH")
    return {lang: 100 * a for lang, a in acc.items()}, f"xnli run {run.info.run_id}"


def read_accuracy_csv(path: Path) -> dict[str, float]:
    if not path.is_file():
        raise InputError(f"no accuracy file at {path}: pass csv:PATH, a CSV with header "
                         f"lang,accuracy")
    with reading(path), path.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    header = [cell.strip() for cell in rows[0]] if rows else []
    if "lang" not in header or "accuracy" not in header:
        raise InputError(f"{path} needs the header lang,accuracy; its first line is "
                         f"{','.join(header) or 'empty'}")
    col_lang, col_acc = header.index("lang"), header.index("accuracy")
    acc: dict[str, float] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        try:
            lang, value = row[col_lang].strip(), float(row[col_acc])
        except (IndexError, ValueError):
            raise InputError(f"{path} line {line}: expected a language code and a number, got "
                             f"{','.join(row)!r}") from None
        if not lang or not math.isfinite(value) or lang in acc:
            raise InputError(f"{path} line {line}: {','.join(row)!r} has an empty, repeated "
                             f"language code or a non-finite accuracy")
        acc[lang] = value
    if not acc:
        raise InputError(f"{path} has a header but no rows: add lines like de,71.1")
    return acc


def write_artifacts(out: Path, texts: dict[str, list[str]],
                    scores: dict[str, list[float | None]], table: dict[str, dict],
                    corr: dict[str, Correlation], meta: dict[str, object]) -> None:
    """scores/<lang>.json (every pair with its score), figures/*.png and table4.json."""
    (out / "scores").mkdir()
    (out / "figures").mkdir()
    for lang, values in scores.items():
        pairs = [{"tau": v, "en": en, lang: text}
                 for v, en, text in zip(values, texts["en"], texts[lang], strict=True)]
        (out / "scores" / f"{lang}.json").write_text(json.dumps(pairs, ensure_ascii=False,
                                                                 indent=1))
        figures.histogram_plot([v for v in values if v is not None],
                               out / "figures" / f"kendall_tau_{lang}.png",
                               f"en → {lang}: Kendall's tau distance, layer {meta['layer']}")
    if corr:
        accuracy = {lang: row["accuracy"] for lang, row in table.items()
                    if row["accuracy"] is not None}
        figures.scatter_plot({lang: row["tau"] for lang, row in table.items()}, accuracy,
                             out / "figures" / "tau_vs_accuracy.png",
                             tasks.task(str(meta["accuracy_task"])).title)
    report = meta | {"languages": table,
                     "pearson": {name: c._asdict() for name, c in corr.items()}}
    (out / "table4.json").write_text(json.dumps(report, indent=2))


def bible_of_model(data: str, data_run_id: str, langs: list[str]) -> tuple[str, int]:
    """The source and chapter split to measure a model of ours on: for the Bibles, when it was
    pretrained on them, its own editions (unless `data` names others) and its own split, so
    that the test verses are ones it never saw; anything else as given."""
    kind, _, editions = data.partition(":")
    split = bible_split(data_run_id) if kind == "bible" else None
    if split is None:
        return data, bibles.SPLIT_SEED
    own, seed = split
    chosen = editions or ",".join(f"{c}:{own[c]}" for c in ["en", *langs] if c in own)
    return f"bible:{chosen}", seed


def kendall_tau(model: str, data: str, languages: list[str], sentences: int, layer: int,
                accuracies: str) -> tuple[str, dict[str, dict], dict[str, Correlation | str]]:
    """Table 4 of `model` as a new run: its id, the rows by language and both correlations
    (each a Correlation or why there is none)."""
    if sentences <= 0:
        raise InputError(f"sentences must be a positive number, got {sentences}")
    langs = [code for code in dict.fromkeys(languages) if code != "en"]
    if not langs:
        raise InputError(f"languages {','.join(languages)!r}: give codes other than en (the "
                         "source side), like de,fr")
    accuracy, accuracy_source = load_accuracies(accuracies)
    task = accuracy_task(accuracies)
    tags = {"model": model, "data": data}
    kind, _, run_id = model.partition(":")
    source, split_seed = data, bibles.SPLIT_SEED
    if kind == "run" and run_id:  # a pretrain run of ours: its final model
        pretrain_run = tracking.get_run(run_id, "pretrain")
        tags["pretrain_run_id"] = run_id
        source, split_seed = bible_of_model(data, pretrain_run.data.tags["data_run_id"], langs)
        encoder = load_encoder(str(checkpoint_folder(run_id, None)))
    else:
        encoder = load_encoder(model)
    encoder.check(langs, layer)
    texts = load_parallel(source, langs, sentences, split_seed)

    start = time.perf_counter()
    scores = wordorder.sentence_scores(encoder, texts, layer)
    seconds_per_1k = (time.perf_counter() - start) / (len(texts["en"]) * len(langs)) * 1000
    table = wordorder.summarize(scores, accuracy)
    both = wordorder.table_correlations(table)
    corr = {name: c for name, c in both.items() if isinstance(c, Correlation)}

    # Everything is written before the run exists, so bad input leaves no half-written run.
    with tempfile.TemporaryDirectory() as tmp:
        meta = {"model": model, "data": data, "layer": layer, "accuracy_source": accuracy_source,
                "accuracy_task": task}
        write_artifacts(Path(tmp), texts, scores, table, corr, meta)
        params = {"model": model, "data": data, "languages": ",".join(langs),
                  "sentences": sentences, "layer": layer, "accuracies": accuracies,
                  "accuracy_source": accuracy_source, "accuracy_task": task}
        if source.partition(":")[0] == "bible":
            params |= {"bible": source, "split_seed": split_seed}
        name = f"kendall-tau-{Path(run_id if kind == 'run' else model).name or model}-L{layer}"
        description = (f"Word order (Kendall's tau distance of Match alignments) of {model} at "
                       f"layer {layer} on {data}, en → {', '.join(langs)}; correlated with "
                       f"{tasks.task(task).title} accuracies from {accuracy_source}.")
        with runs.start(STEP, name, tags, params,
                        tracking.experiment_name(), description) as run, \
                tracking.server_errors():
            metrics = {f"{tracking.KENDALL_TAU}en": 1.0, "seconds_per_1k_pairs": seconds_per_1k}
            for lang, row in table.items():
                if lang != "en":
                    metrics |= {f"{tracking.KENDALL_TAU}{lang}": row["tau"],
                                f"kendall_tau_std/{lang}": row["std"],
                                f"kendall_tau_sentences/{lang}": row["sentences"],
                                f"kendall_tau_skipped/{lang}": row["skipped"]}
            for which, c in corr.items():
                metrics |= {f"pearson_r/{which}": c.r, f"pearson_p/{which}": c.p_value}
            mlflow.log_metrics(metrics)
            mlflow.log_artifacts(tmp)
    click.echo(f"kendall-tau: finished run {run.info.run_id} "
               f"({seconds_per_1k:.1f} s per 1,000 sentence pairs)")
    return run.info.run_id, table, both
