"""The one error type that reaches the user as a one-line message and exit code 2."""


class UserError(Exception):
    """Bad input from the user or a bad file on disk: printed as one line, exit code 2, no traceback.

    The message says what is wrong and what to do about it.
    """
