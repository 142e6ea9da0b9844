"""`kendall-tau`: word order of parallel sentences against XNLI transfer (paper App. B.2, Table 4).

Aligns English with each language (Match on the encoder's word vectors), scores every sentence
pair with Kendall's tau distance, and correlates the per-language means with XNLI accuracies
(Pearson r, with and without English), as one MLflow run.
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
import numpy as np
import torch

from analysis import paper
from entrypoints.common import run_command, start_run
from minimult_ml import figures, tracking, wordorder
from minimult_ml.errors import InputError
from minimult_ml.parallel import XNLI_LANGUAGES, load_parallel
from minimult_ml.representations import Encoder, load_encoder
from minimult_ml.threads import single_threaded

DEFAULT_LANGUAGES = ",".join(lang for lang in XNLI_LANGUAGES if lang != "en")
XNLI_METRIC = "xnli_acc/"


def parse_languages(spec: str) -> list[str]:
    """Comma-separated codes; English is the source side, so it is not a target."""
    langs = [code.strip() for code in spec.split(",") if code.strip() and code.strip() != "en"]
    if not langs:
        raise InputError(f"languages {spec!r}: give codes other than en, like de,fr")
    return list(dict.fromkeys(langs))


def load_accuracies(spec: str) -> tuple[dict[str, float], str]:
    """XNLI accuracy per language, and where it comes from: `paper`, `xnli-runs` or `csv:PATH`."""
    if spec == "paper":
        return dict(paper.PAPER_XNLI_ACC), "paper Table 4 (mBERT)"
    if spec == "xnli-runs":
        return xnli_run_accuracies()
    kind, _, path = spec.partition(":")
    if kind == "csv" and path:
        return read_accuracy_csv(Path(path)), f"csv {path}"
    raise InputError(f"unknown accuracies {spec!r}: use paper, xnli-runs or csv:PATH (a CSV with "
                     f"header lang,accuracy)")


def xnli_run_accuracies() -> tuple[dict[str, float], str]:
    """The `xnli_acc/<lang>` metrics of the newest finished xnli run of the real track."""
    experiment = tracking.experiment_name(tracking.REAL_EXPERIMENT)
    run = tracking.find_run("xnli", {}, experiment)
    if run is None:
        raise InputError(f"no finished xnli run in experiment {experiment} on "
                         f"{mlflow.get_tracking_uri()}: run the xnli entry point first, or pass "
                         f"accuracies=paper or accuracies=csv:PATH")
    acc = {key.removeprefix(XNLI_METRIC): value for key, value in run.data.metrics.items()
           if key.startswith(XNLI_METRIC)}
    if not acc:
        raise InputError(f"xnli run {run.info.run_id} has no {XNLI_METRIC}<lang> metrics; pass "
                         f"accuracies=paper or accuracies=csv:PATH")
    return acc, f"xnli run {run.info.run_id}"


def read_accuracy_csv(path: Path) -> dict[str, float]:
    if not path.is_file():
        raise InputError(f"no accuracy file at {path}: pass csv:PATH, a CSV with header "
                         f"lang,accuracy")
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f))
    except UnicodeDecodeError as err:
        raise InputError(f"{path} is not UTF-8 text ({err.reason}): save it as UTF-8") from err
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


def pair_tau(src: torch.Tensor, tgt: torch.Tensor) -> float | None:
    """One sentence pair's score; None when it has fewer than two aligned words (skipped)."""
    taus, _ = wordorder.sentence_taus([(src, tgt)])
    return taus[0] if taus else None


def sentence_scores(encoder: Encoder, texts: dict[str, list[str]],
                    layer: int) -> dict[str, list[float | None]]:
    """Kendall's tau distance of every sentence pair en → lang, index-parallel with the data."""
    english = encoder.word_vectors(texts["en"], "en", layer)
    scores = {}
    for lang, lines in texts.items():
        if lang != "en":
            target = encoder.word_vectors(lines, lang, layer)
            with single_threaded():
                scores[lang] = [pair_tau(s, t) for s, t in zip(english, target, strict=True)]
    return scores


def summarize(scores: dict[str, list[float | None]],
              accuracy: dict[str, float]) -> dict[str, dict]:
    """Table 4's rows: tau mean, std (over sentences, ddof 0), sentences, skipped, accuracy.

    English is 1.0 by definition: it is the source side of every pair.
    """
    table = {"en": {"tau": 1.0, "std": None, "sentences": None, "skipped": None,
                    "accuracy": accuracy.get("en")}}
    for lang, values in scores.items():
        kept = np.array([v for v in values if v is not None])
        if not len(kept):
            raise InputError(f"no en–{lang} sentence pair has two aligned words; check the "
                             f"{lang} sentences of the data")
        table[lang] = {"tau": float(kept.mean()), "std": float(kept.std()),
                       "sentences": len(kept), "skipped": len(values) - len(kept),
                       "accuracy": accuracy.get(lang)}
    return table


def correlate(table: dict[str, dict]) -> dict[str, wordorder.Correlation]:
    """Pearson r with and without English, each where at least 3 languages have an accuracy."""
    tau = {lang: row["tau"] for lang, row in table.items()}
    accuracy = {lang: row["accuracy"] for lang, row in table.items() if row["accuracy"] is not None}
    found = {}
    for name, exclude in (("with_en", ()), ("without_en", ("en",))):
        try:
            found[name] = wordorder.correlation(tau, accuracy, exclude)
        except ValueError as err:  # too few languages with an accuracy: report, log nothing
            click.echo(f"no Pearson r {name}: {err}")
    return found


def print_table(table: dict[str, dict], corr: dict[str, wordorder.Correlation]) -> None:
    def cell(value: float | None, spec: str, width: int) -> str:
        return ("–" if value is None else format(value, spec)).rjust(width)

    click.echo(f"{'lang':8s} {'tau':>6s} {'std':>6s} {'pairs':>6s} {'skip':>5s} {'acc':>6s}")
    for lang, row in table.items():
        click.echo(f"{lang:8s} {row['tau']:6.3f} {cell(row['std'], '.3f', 6)} "
                   f"{cell(row['sentences'], 'd', 6)} {cell(row['skipped'], 'd', 5)} "
                   f"{cell(row['accuracy'], '.1f', 6)}")
    for name, c in corr.items():
        click.echo(f"Pearson r {name}: {c.r:.2f} (p = {c.p_value:.3f}, {c.n} languages)")


def write_artifacts(out: Path, texts: dict[str, list[str]],
                    scores: dict[str, list[float | None]], table: dict[str, dict],
                    corr: dict[str, wordorder.Correlation], meta: dict[str, object]) -> None:
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
                             out / "figures" / "tau_vs_accuracy.png")
    report = meta | {"languages": table,
                     "pearson": {name: c._asdict() for name, c in corr.items()}}
    (out / "table4.json").write_text(json.dumps(report, indent=2))


@click.command("kendall-tau")
@click.option("--model", default="bert-base-multilingual-cased", show_default=True,
              help="Encoder: a model folder (ours or Hugging Face) or a hub name.")
@click.option("--data", default="hub", show_default=True,
              help="Parallel sentences: hub, xnli-tsv:PATH or dir:PATH.")
@click.option("--languages", default=DEFAULT_LANGUAGES, show_default=True,
              help="Comma-separated codes aligned with English.")
@click.option("--sentences", type=int, default=2500, show_default=True,
              help="Sentence pairs per language (the first N).")
@click.option("--layer", type=int, default=8, show_default=True, help="Layer (0 = embeddings).")
@click.option("--accuracies", default="paper", show_default=True,
              help="XNLI accuracies: paper (Table 4, mBERT), xnli-runs or csv:PATH.")
def command(model: str, data: str, languages: str, sentences: int, layer: int,
            accuracies: str) -> None:
    """Kendall's tau distance of aligned parallel sentences and its correlation with XNLI."""
    if sentences <= 0:
        raise InputError(f"sentences must be a positive number, got {sentences}")
    langs = parse_languages(languages)
    accuracy, accuracy_source = load_accuracies(accuracies)
    encoder = load_encoder(model)
    encoder.check(langs, layer)
    texts = load_parallel(data, langs, sentences)

    start = time.perf_counter()
    scores = sentence_scores(encoder, texts, layer)
    seconds_per_1k = (time.perf_counter() - start) / (len(texts["en"]) * len(langs)) * 1000
    table = summarize(scores, accuracy)
    corr = correlate(table)

    # Everything is written before the run exists, so bad input leaves no half-written run.
    with tempfile.TemporaryDirectory() as tmp:
        meta = {"model": model, "data": data, "layer": layer, "accuracy_source": accuracy_source}
        write_artifacts(Path(tmp), texts, scores, table, corr, meta)
        params = {"model": model, "data": data, "languages": ",".join(langs),
                  "sentences": sentences, "layer": layer, "accuracies": accuracies,
                  "accuracy_source": accuracy_source}
        name = f"kendall-tau-{Path(model).name or model}-L{layer}"
        tags = {"step": "kendall-tau", "model": model, "data": data}
        with start_run(name, tags, own_launcher=True) as run:
            mlflow.log_params(params | tracking.provenance())
            metrics = {"kendall_tau/en": 1.0, "seconds_per_1k_pairs": seconds_per_1k}
            for lang, row in table.items():
                if lang != "en":
                    metrics |= {f"kendall_tau/{lang}": row["tau"],
                                f"kendall_tau_std/{lang}": row["std"],
                                f"kendall_tau_sentences/{lang}": row["sentences"],
                                f"kendall_tau_skipped/{lang}": row["skipped"]}
            for which, c in corr.items():
                metrics |= {f"pearson_r/{which}": c.r, f"pearson_p/{which}": c.p_value}
            mlflow.log_metrics(metrics)
            mlflow.log_artifacts(tmp)
    print_table(table, corr)
    click.echo(f"kendall-tau: finished run {run.info.run_id} "
               f"({seconds_per_1k:.1f} s per 1,000 sentence pairs)")


if __name__ == "__main__":
    run_command(command)
