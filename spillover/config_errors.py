"""pydantic's validation errors as people read them: one line per bad key, with why."""

from __future__ import annotations

from pydantic import ValidationError


def describe_validation_error(error: ValidationError) -> str:
    """Every bad key of a document, one per line, with why."""
    lines = []
    for problem in error.errors(include_url=False):
        key = _key(problem["loc"])
        reason = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            reason = "unknown key (a typo?)"
        lines.append(f"  {key or '(top level)'}: {reason}")
    return "\n".join(lines)


def _key(location: tuple[int | str, ...]) -> str:
    """pools.1.max_replicas -> pools[1].max_replicas"""
    key = ""
    for part in location:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key
