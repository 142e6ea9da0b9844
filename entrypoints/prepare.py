"""`prepare`: corpus → sentences, vocabulary, token ids and statistics, as one MLflow run."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

import click
import mlflow
from mlflow.tracking import MlflowClient

from entrypoints.common import OPTIONAL_FLOAT, OPTIONAL_INT, note_launcher, run_command, start_run
from minimult_ml import store, tracking
from minimult_ml.prepare import LAB_LANGUAGES, PrepareConfig, prepare


def run_name(config: PrepareConfig) -> str:
    source = Path(config.source.partition(":")[2]).stem or config.source
    languages = "" if config.is_lab else "-" + "-".join(config.codes)
    return f"prepare-{source}{languages}-v{config.vocab_size}"


def experiment_of(track: str) -> str:
    """The experiment of a track's runs: minimult-lab or minimult-real (unless overridden)."""
    return tracking.experiment_name(tracking.REAL_EXPERIMENT if track == "real"
                                    else tracking.LAB_EXPERIMENT)


def languages_of(data_run_id: str) -> list[str]:
    """The language codes of a prepare run's data, in the order of its id blocks."""
    return MlflowClient().get_run(data_run_id).data.params.get("languages",
                                                               LAB_LANGUAGES).split(",")


def track_of(data_run_id: str) -> str:
    """The track of a prepare run's data: the lab (English + Fake-English) or real."""
    return "lab" if languages_of(data_run_id) == LAB_LANGUAGES.split(",") else "real"


def get_or_run(config: PrepareConfig, force: bool = False, own_launcher: bool = False) -> str:
    """The id of the newest finished prepare run with this config; runs prepare when none."""
    config.validate()
    experiment = experiment_of("lab" if config.is_lab else "real")
    params = dataclasses.asdict(config)
    store.check_experiment(experiment)
    # Two processes wanting the same data at once: the second waits, then reuses the first's run.
    with store.exclusive(f"prepare {params}", waiting=lambda: click.echo(
            "prepare: another process is preparing the same data; waiting for it")):
        store.end_orphans(tracking.find_runs("prepare", params, experiment, finished=False))
        if not force and (found := tracking.find_run("prepare", params, experiment)):
            run_id = found.info.run_id
            click.echo(f"prepare: reusing finished run {run_id} (force=true builds anew)")
            if own_launcher:
                note_launcher(f"Reused the finished prepare run {run_id}.", run_id)
            return run_id
        run = _build(config, params, experiment, own_launcher)
    click.echo(f"prepare: finished run {run.info.run_id}")
    return run.info.run_id


def _build(config: PrepareConfig, params: dict[str, object], experiment: str,
           own_launcher: bool) -> mlflow.ActiveRun:
    # Build everything before the run exists, so bad input leaves no half-written run behind.
    with tempfile.TemporaryDirectory() as tmp:
        summary = prepare(config, Path(tmp))
        stats = summary["stats"]
        tags = {"step": "prepare", "languages": ",".join(stats["languages"])}
        logged = params | summary["fingerprints"] | tracking.provenance() | {
            "sentence_splitter": json.dumps(stats["sentence_splitter"])}
        with start_run(run_name(config), tags, own_launcher, logged, experiment) as run:
            mlflow.log_metrics(_flatten({split: stats[split] for split in ("train", "dev")})
                               | {"vocab_size": stats["vocab_size"]})
            mlflow.log_artifacts(tmp)
    return run


def _flatten(tree: dict, prefix: str = "") -> dict[str, float]:
    """{"train": {"de": {"sentences": 3}}} → {"train/de/sentences": 3}."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}/")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def data_run(data_run_id: str | None, track: str = "lab") -> str:
    """The prepare run a later step uses: the one given (checked), or the newest finished
    default one of the track — run first when there is none (DESIGN §3)."""
    if data_run_id:
        tracking.get_run(data_run_id, "prepare")
        return data_run_id
    return get_or_run(PrepareConfig() if track == "lab" else PrepareConfig.real())


def print_stats(run_id: str) -> None:
    stats = mlflow.artifacts.load_dict(f"runs:/{run_id}/stats.json")
    for split in ("train", "dev"):
        if "sentences" in stats[split]:  # the lab: one English corpus
            s = stats[split]
            click.echo(f"{split:5s} {s['sentences']:>7,} sentences  {s['words']:>9,} words  "
                       f"{s['word_types']:>6,} word types  {s['characters']:>3} characters  "
                       f"median {s['median_sentence_words']:g} words/sentence")
            continue
        for code, s in stats[split].items():
            click.echo(f"{split:5s} {code:3s} {s['sentences']:>9,} sentences  "
                       f"{s['tokens']:>11,} tokens  median {s['median_sentence_tokens']:g} "
                       f"tokens/sentence")
    sizes = ", ".join(f"{code} {size}" for code, size in
                      zip(stats["languages"], stats["vocab_size_per_language"], strict=True))
    click.echo(f"vocabulary {stats['vocab_size']} ids ({sizes}); sentence splitter: "
               f"{json.dumps(stats['sentence_splitter'])}")


@click.command("prepare")
@click.option("--languages", default=LAB_LANGUAGES, show_default=True,
              help="en,fake-en (the lab) or real languages' ISO codes, like en,de,hi.")
@click.option("--source", help="Lab: bible (default), bible:3 (Basic English), pbc:PATH or "
                               "text:PATH. Real languages: bible (default: the embedded Bibles), "
                               "wikipedia, wikipedia:DIR or text:DIR (DIR/<lang>.txt).")
@click.option("--dev-source", help="Lab: the dev text, as --source (default bible).")
@click.option("--vocab-size", type=OPTIONAL_INT,
              help="WordPiece vocabulary size per language (2048 lab, 20000 real).")
@click.option("--dev-sentences", type=OPTIONAL_INT,
              help="Dev sentences per language (lab: the first 10000; real: 5000 held out).")
@click.option("--train-sentences", type=OPTIONAL_INT,
              help="Use only the first N training sentences per language (default 0 = all).")
@click.option("--bytes-per-language", type=OPTIONAL_FLOAT,
              help="Real languages: sample this much UTF-8 text of each (default 1e9).")
@click.option("--seed", type=OPTIONAL_INT,
              help="Real languages: which articles are sampled (default 0).")
@click.option("--editions", help="Real languages from the Bibles: an edition per language, "
                                 "like de:s,en:k (default: the README's table).")
@click.option("--force", type=bool, default=False, show_default=True,
              help="Build anew even if a finished run exists.")
def command(languages: str, source: str | None, dev_source: str | None, vocab_size: int | None,
            dev_sentences: int | None, train_sentences: int | None,
            bytes_per_language: float | None, seed: int | None, editions: str | None,
            force: bool) -> None:
    """Prepare a corpus: sentences, WordPiece vocabularies, token ids, stats (lab or real)."""
    config = PrepareConfig.of(
        languages, source=source or None, dev_source=dev_source or None,
        vocab_size=vocab_size, dev_sentences=dev_sentences, train_sentences=train_sentences,
        bytes_per_language=None if bytes_per_language is None else int(bytes_per_language),
        seed=seed, editions=editions or None)
    print_stats(get_or_run(config, force=force, own_launcher=True))


if __name__ == "__main__":
    run_command(command)
