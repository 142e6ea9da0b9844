"""`minimult`: one sub-command per MLproject entry point.

Each sub-command's module is imported only when that sub-command runs (or shows its help), so
`minimult --help` answers without loading torch.
"""

from __future__ import annotations

import importlib

import click

from entrypoints.common import run_command

# name → (module, one-line help shown by `minimult --help`)
COMMANDS = {
    "prepare": ("prepare", "Prepare a corpus: sentences, WordPiece vocabularies, token ids, "
                           "stats."),
    "pretrain": ("pretrain", "Pretrain BERT with MLM under an exp's modifications."),
    "evaluate": ("evaluate", "Evaluate multilinguality and model fit of checkpoints."),
    "knn-space": ("knn_space", "Build (or reuse) the knn-replace neighbour table."),
    "kendall-tau": ("kendall_tau", "Word order of parallel sentences against transfer accuracy."),
    "transfer": ("transfer", "Zero-shot cross-lingual transfer of a pretrained model "
                             "(bible-genre or xnli)."),
    "xnli": ("xnli", "Zero-shot cross-lingual transfer on XNLI of a pretrained model."),
    "sweep-manifest": ("sweep_manifest", "Print the Kubernetes Jobs of a sweep."),
    "analysis": ("analysis", "Tables 1–4 and Figures 6–7 beside the paper's numbers."),
    "main": ("main", "Reproduce a track's tables: the sweep of exps × seeds, then the analysis."),
}


class LazyGroup(click.Group):
    """A group whose sub-commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        return importlib.import_module(f"entrypoints.{COMMANDS[name][0]}").command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, short) in COMMANDS.items()])


@click.group(cls=LazyGroup)
def cli() -> None:
    """minimult-ml: why are multilingual language models multilingual? (Dufter & Schütze 2020)

    \b
    Each step is also an MLflow entry point; from the project folder (the Docker image's
    working directory), with MLFLOW_TRACKING_URI naming the server:
      mlflow run . -e pretrain --env-manager local -P exp=knn-replace [-P seed=42]
    """


def main() -> None:
    run_command(cli)
