"""The one error type for bad input (DESIGN §9), and the checks every config shares."""

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
