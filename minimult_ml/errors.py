"""The one error type for bad input (DESIGN §9), and the checks every config shares."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# numpy, torch and fastText (a C int, with the language index added) all take seeds in this range
SEED_RANGE = range(0, 2**31 - 1000)


class InputError(ValueError):
    """Bad input from the user: the message is one line naming the input and what to do.

    Entry points print it and exit with code 2; anything else is a bug and keeps its traceback.
    """


def check_seed(seed: int, what: str = "seed") -> None:
    """A seed every random generator of the project accepts (numpy refuses negative ones deep
    inside a step)."""
    if seed not in SEED_RANGE:
        raise InputError(f"{what} must be between 0 and {SEED_RANGE.stop - 1}, got {seed}; "
                         "give a non-negative integer like 42")


@contextmanager
def reading(path: Path, what: str = "") -> Iterator[None]:
    """Reading the text file `path` (`what` names the input in the message): a file that is
    not UTF-8, or that cannot be read at all (permissions, a directory, a disk error), is bad
    input, one line naming it."""
    prefix = f"{what}: " if what else ""
    try:
        yield
    except UnicodeDecodeError as err:
        raise InputError(f"{prefix}{path} is not UTF-8 text (byte {err.start}: {err.reason}); "
                         "convert it to UTF-8 first") from None
    except OSError as err:
        raise InputError(f"{prefix}{path} cannot be read ({err.strerror or err}); give a "
                         "readable file") from None


class Interrupted(Exception):
    """A step stopped on Ctrl-C after saving what lets it resume; the message says how.

    Entry points print it and exit with code 130, as a shell does for Ctrl-C (143 after
    SIGTERM, which stops a step the same way).
    """
