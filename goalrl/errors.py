"""Errors that mean the user gave bad input (as opposed to a bug in goalrl)."""


class UserError(Exception):
    """Bad input from the user: the CLI prints its message on one line, no traceback."""
