"""The local stack's refusals, named for what the caller should do."""

from __future__ import annotations

from spillover.errors import PermanentError


class StackError(PermanentError):
    """The local stack cannot do what was asked, and asking again will not help until
    someone acts: the message says why and what to do."""
