"""`kendall-tau`: word order of parallel sentences against XNLI transfer (paper App. B.2, Table 4),
as one MLflow run."""

from __future__ import annotations

import click

from entrypoints.common import CommaList, run_command
from minimult_ml.parallel import XNLI_LANGUAGES

DEFAULT_LANGUAGES = ",".join(lang for lang in XNLI_LANGUAGES if lang != "en")


def print_table(table: dict[str, dict], correlations: dict[str, object]) -> None:
    def cell(value: float | None, spec: str, width: int) -> str:
        return ("–" if value is None else format(value, spec)).rjust(width)

    click.echo(f"{'lang':8s} {'tau':>6s} {'std':>6s} {'pairs':>6s} {'skip':>5s} {'acc':>6s}")
    for lang, row in table.items():
        click.echo(f"{lang:8s} {row['tau']:6.3f} {cell(row['std'], '.3f', 6)} "
                   f"{cell(row['sentences'], 'd', 6)} {cell(row['skipped'], 'd', 5)} "
                   f"{cell(row['accuracy'], '.1f', 6)}")
    for name, c in correlations.items():
        if isinstance(c, str):  # too few languages with an accuracy: why there is no r
            click.echo(f"no Pearson r {name}: {c}")
        else:
            click.echo(f"Pearson r {name}: {c.r:.2f} (p = {c.p_value:.3f}, {c.n} languages)")


@click.command("kendall-tau")
@click.option("--model", default="bert-base-multilingual-cased", show_default=True,
              help="Encoder: a model folder (ours or Hugging Face), a hub name, or run:RUN_ID "
                   "(a pretrain run's final model).")
@click.option("--data", default="hub", show_default=True,
              help="Parallel sentences: hub, xnli-tsv:PATH, dir:PATH or bible (the Bibles' test "
                   "verses; bible:de:s picks editions; for run:RUN_ID pretrained on the Bibles, "
                   "its own editions and chapter split).")
@click.option("--languages", type=CommaList(example="de,fr", what="language codes"),
              default=DEFAULT_LANGUAGES,
              show_default=True, help="Codes aligned with English.")
@click.option("--sentences", type=int, default=2500, show_default=True,
              help="Sentence pairs per language (the first N).")
@click.option("--layer", type=int, default=8, show_default=True, help="Layer (0 = embeddings).")
@click.option("--accuracies", default="paper", show_default=True,
              help="Accuracies to correlate with: paper (Table 4, mBERT's XNLI), xnli-runs, "
                   "transfer:RUN_ID (a transfer run, e.g. bible-genre) or csv:PATH.")
def command(model: str, data: str, languages: list[str], sentences: int, layer: int,
            accuracies: str) -> None:
    """Kendall's tau distance of aligned parallel sentences and its correlation with XNLI."""
    from minimult_ml.steps.kendall_tau import kendall_tau

    _, table, correlations = kendall_tau(model, data, languages, sentences, layer, accuracies)
    print_table(table, correlations)


if __name__ == "__main__":
    run_command(command)
