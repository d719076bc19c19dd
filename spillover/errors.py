"""Errors a user can act on: the CLI prints their message without a traceback."""


class SpilloverError(Exception):
    """Base of every error whose message tells the user what went wrong and what to do."""


class TemporaryError(SpilloverError):
    """It may work if tried again after `delay` seconds (a busy socket, an API hiccup)."""

    def __init__(self, message: str, delay: float = 1.0) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(SpilloverError):
    """Trying again will not help until someone changes something; the message says what."""
