"""What every entry point shares: one-line errors with exit code 2, and the parameter types of
MLproject parameters (which cannot be left out, so "" means the default)."""

from __future__ import annotations

import math
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import click

from minimult_ml.errors import InputError, Interrupted
from minimult_ml.steps import REUSE


def run_command(command: click.Command, args: list[str] | None = None) -> None:
    """Run a click command; bad input (ours or click's) is one line on stderr and exit code 2.

    SIGTERM (what a cluster sends before it evicts a pod) stops a step like Ctrl-C: pretrain
    writes its last checkpoint and leaves its run KILLED, resumable; the exit code is 128 + the
    signal's number, as a shell's.
    """
    # MLflow prints an experiment address after every run on a server, and MLflow 3's UI opens
    # that on its GenAI page; `analysis` prints the runs table's instead (minimult_ml.ui).
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    received = []

    def terminate(signum: int, frame: object) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    try:
        if os.environ.get("MLFLOW_RUN_ID") and not isinstance(command, click.Group):
            from minimult_ml.tracking import name_launcher

            name_launcher(command.name)
        command.main(args, standalone_mode=False)
    except (InputError, click.ClickException) as e:
        message = e.format_message() if isinstance(e, click.ClickException) else str(e)
        if os.environ.get("MLFLOW_RUN_ID"):  # under `mlflow run`: the launcher says why
            from minimult_ml.store import note_refusal

            note_refusal(message)
        click.echo(f"error: {message}", err=True)
        sys.exit(2)
    except (click.Abort, Interrupted) as e:
        click.echo(str(e) or "aborted", err=True)
        sys.exit(128 + (received[0] if received else signal.SIGINT))


class OrDefault(click.ParamType):
    """A value of `inner`, or "" for the default (MLproject parameters cannot be left out)."""

    def __init__(self, inner: click.ParamType) -> None:
        self.inner = inner
        self.name = inner.name

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> object:
        if value is None or value == "":
            return None
        return self.inner.convert(value, param, ctx)


class FiniteFloat(click.types.FloatParamType):
    """A float that is a number: inf and nan (which float() accepts) are refused."""

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


FINITE_FLOAT = FiniteFloat()
INT_OR_DEFAULT = OrDefault(click.INT)
FLOAT_OR_DEFAULT = OrDefault(FINITE_FLOAT)


class CommaList(click.ParamType):
    """Comma-separated values of `item` ("0,42,43"), blanks and repeats dropped; never empty.
    `what` names the values in the error message, `example` shows some."""

    def __init__(self, item: click.ParamType = click.STRING, example: str = "a,b",
                 what: str = "") -> None:
        self.item = item
        self.example = example
        self.what = what or f"{item.name}s"
        self.name = "list"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> list[Any]:
        if isinstance(value, list):
            return value
        parts = [s.strip() for s in str(value).split(",") if s.strip()]
        if not parts:
            self.fail(f"{value!r} is empty: give a comma-separated list like {self.example}",
                      param, ctx)
        try:
            items = [self.item.convert(p, param, ctx) for p in parts]
        except click.BadParameter:
            self.fail(f"{value!r}: give {self.what}, like {self.example}", param, ctx)
        return list(dict.fromkeys(items))


def flag(name: str, help: str) -> Callable:
    """A boolean option that works as a flag (`--resume`) and with a value, as MLproject passes
    it (`--resume true`, from `-P resume=true`)."""
    return click.option(name, type=click.BOOL, is_flag=False, flag_value=True, default=False,
                        show_default=True, help=help)


reuse_option = click.option(
    "--reuse", type=click.Choice(REUSE), default="same-code", show_default=True,
    help="Reuse a finished run with the same parameters: same-code (only one made by the "
         "step's current code), any (whatever code made it) or never (build anew).")


def transfer_options(command: Callable) -> Callable:
    """The options of `transfer` and `xnli` (a pretrain run's model fine-tuned and tested)."""
    for option in reversed([
        click.option("--run-id", required=True,
                     help="The pretrain run whose model is fine-tuned."),
        click.option("--step", type=INT_OR_DEFAULT, show_default="the final model",
                     help="A checkpoint step."),
        click.option("--train", "train_spec", default="hub", show_default=True,
                     help="xnli: English NLI training data: hub, multinli:PATH or xnli-mt:PATH."),
        click.option("--test", "test_spec", default="hub", show_default=True,
                     help="xnli: XNLI test data: hub or xnli-tsv:PATH."),
        click.option("--languages",
                     type=OrDefault(CommaList(example="en,de", what="language codes")),
                     default="", show_default="all of the model's",
                     help="Languages tested, comma-separated."),
        click.option("--train-examples", type=int, default=0, show_default=True,
                     help="Fine-tune on N examples only (0 = all): xnli the first N, "
                          "bible-genre N drawn at random."),
        click.option("--epochs", type=FINITE_FLOAT, default=3.0, show_default=True),
        click.option("--batch-size", type=int, default=32, show_default=True),
        click.option("--lr", type=FINITE_FLOAT, default=2e-5, show_default=True),
        click.option("--seed", type=int, default=42, show_default=True),
        reuse_option]):
        command = option(command)
    return command
