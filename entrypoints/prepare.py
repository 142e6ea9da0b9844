"""`prepare`: corpus → sentences, vocabulary, token ids and statistics, as one MLflow run."""

from __future__ import annotations

import json

import click

from entrypoints.common import FLOAT_OR_DEFAULT, INT_OR_DEFAULT, reuse_option, run_command
from minimult_ml.prepare import LAB_LANGUAGES, PrepareConfig


def print_stats(stats: dict) -> None:
    for split in [s for s in ("train", "dev", "test") if s in stats]:
        if "sentences" in stats[split]:  # the lab: one English corpus
            s = stats[split]
            click.echo(f"{split:5s} {s['sentences']:>7,} sentences  {s['words']:>9,} words  "
                       f"{s['word_types']:>6,} word types  {s['characters']:>3} characters  "
                       f"median {s['median_sentence_words']:g} words/sentence")
            continue
        for code, s in stats[split].items():
            words = (f"{s['words']:>9,} words  {s['word_types']:>6,} word types  "
                     f"{s['characters']:>5,} characters  median {s['median_verse_words']:g} "
                     "words/verse  ") if "words" in s else ""  # the Bibles' verses
            click.echo(f"{split:5s} {code:3s} {s['sentences']:>9,} sentences  {words}"
                       f"{s['tokens']:>11,} tokens  median {s['median_sentence_tokens']:g} "
                       f"tokens/sentence")
    sizes = ", ".join(f"{code} {size}" for code, size in
                      zip(stats["languages"], stats["vocab_size_per_language"], strict=True))
    click.echo(f"vocabulary {stats['vocab_size']} ids ({sizes}); sentence splitter: "
               f"{json.dumps(stats['sentence_splitter'])}")


@click.command("prepare")
@click.option("--languages", default=LAB_LANGUAGES, show_default=True,
              help="en,fake-en (the lab) or real languages' ISO codes, like en,de,hi.")
@click.option("--source", show_default="bible",
              help="Lab: bible, bible:3 (Basic English), pbc:PATH or text:PATH. Real languages: "
                   "bible (the embedded Bibles), wikipedia, wikipedia:DIR or text:DIR "
                   "(DIR/<lang>.txt).")
@click.option("--dev-source", show_default="bible", help="Lab: the dev text, as --source.")
@click.option("--vocab-size", type=INT_OR_DEFAULT,
              show_default="2048 lab; real: 5000 Bibles, 20000 Wikipedia",
              help="WordPiece vocabulary size per language.")
@click.option("--dev-sentences", type=INT_OR_DEFAULT,
              show_default="lab: the first 10000; real: 5000 held out",
              help="Dev sentences per language.")
@click.option("--train-sentences", type=INT_OR_DEFAULT, show_default="0 = all",
              help="Use only the first N training sentences per language.")
@click.option("--bytes-per-language", type=FLOAT_OR_DEFAULT, show_default="1e9",
              help="Real languages: sample this much UTF-8 text of each.")
@click.option("--seed", type=INT_OR_DEFAULT, show_default="0",
              help="Real languages: which Wikipedia articles are sampled, or how the Bibles' "
                   "chapters are split into train, dev and test.")
@click.option("--editions", default="", show_default="the README's table",
              help="Real languages from the Bibles: an edition per language, like de:s,en:k.")
@reuse_option
def command(languages: str, source: str | None, dev_source: str | None, vocab_size: int | None,
            dev_sentences: int | None, train_sentences: int | None,
            bytes_per_language: float | None, seed: int | None, editions: str,
            reuse: str) -> None:
    """Prepare a corpus: sentences, WordPiece vocabularies, token ids, stats (lab or real)."""
    from minimult_ml.steps import prepare

    config = PrepareConfig.of(
        languages, source=source or None, dev_source=dev_source or None,
        vocab_size=vocab_size, dev_sentences=dev_sentences, train_sentences=train_sentences,
        bytes_per_language=None if bytes_per_language is None else int(bytes_per_language),
        seed=seed, editions=editions or None)
    print_stats(prepare.stats(prepare.get_or_run(config, reuse)))


if __name__ == "__main__":
    run_command(command)
