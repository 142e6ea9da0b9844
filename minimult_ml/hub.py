"""Loading from the Hugging Face hub (or its cache): every failure as one line naming what was
loaded and how to do without the hub."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from transformers.utils import logging as hf_logging

from minimult_ml.errors import InputError

# huggingface_hub's and datasets' network, hub and cache failures are all OSErrors (requests'
# errors, HfHubHTTPError, OfflineModeIsEnabled, LocalEntryNotFoundError, DatasetNotFoundError);
# an unknown configuration or model type is a ValueError. Anything else is a bug.
ERRORS = (OSError, ValueError)


@contextmanager
def hub_errors(what: str, fix: str) -> Iterator[None]:
    """Turn a failure to load `what` into an InputError: its first line, then `fix`."""
    try:
        yield
    except InputError:  # already one line of ours (InputError is a ValueError too)
        raise
    except ERRORS as err:
        reason = (str(err).splitlines() or [""])[0]  # hub errors can span lines: keep one
        raise InputError(f"could not load {what} ({type(err).__name__}: {reason}); {fix}"
                         ) from None


@contextmanager
def without_load_report() -> Iterator[None]:
    """transformers' report of a checkpoint's missing and unexpected weights, silenced. Loading
    a masked LM into an encoder or a sequence classifier drops its MLM head and adds a pooler or
    a new head, as intended, and the report (a 20-line table) says only that."""
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
