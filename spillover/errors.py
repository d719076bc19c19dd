"""Errors a user can act on: the CLI prints their message without a traceback."""


class SpilloverError(Exception):
    """Base of every error whose message tells the user what went wrong and what to do."""
