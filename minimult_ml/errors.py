"""The one error type for bad input (DESIGN §9)."""


class InputError(ValueError):
    """Bad input from the user: the message is one line naming the input and what to do.

    Entry points print it and exit with code 2; anything else is a bug and keeps its traceback.
    """


class Interrupted(Exception):
    """A step stopped on Ctrl-C after saving what lets it resume; the message says how.

    Entry points print it and exit with code 130, as a shell does for Ctrl-C.
    """
