"""A small IAM policy evaluator, after AWS's documented logic, for the statements infra/ writes.

Enough to ask "would AWS allow this request?" of an identity policy: Allow and Deny statements,
Action and Resource with `*` and `?` wildcards (actions case-insensitive), and the condition
operators the program uses. A missing condition key makes a condition false, except with an
...IfExists operator, where it is true; that difference is the one Triton's HeadBucket meets.
An operator it does not know fails the evaluation rather than guessing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any


@dataclass(frozen=True)
class Request:
    """One API call as IAM authorizes it: its action, resource ARN and request context keys."""

    action: str
    resource: str
    context: dict[str, str] = field(default_factory=dict)
    call: str = ""
    """The API call (HeadBucket, ListObjectsV2, ...), for messages."""


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _matches(pattern: str, value: str, case_sensitive: bool) -> bool:
    if not case_sensitive:
        pattern, value = pattern.lower(), value.lower()
    return fnmatchcase(value, pattern)


def _condition_holds(operator: str, key: str, wanted: str | list[str], context: dict) -> bool:
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    if key not in context:
        return if_exists
    actual = context[key]
    options = _listed(wanted)
    if base == "StringLike":
        return any(fnmatchcase(actual, option) for option in options)
    if base == "StringEquals":
        return actual in options
    if base == "Bool":
        return actual.lower() in [option.lower() for option in options]
    raise NotImplementedError(f"condition operator {operator} is not simulated")


def _applies(statement: dict[str, Any], request: Request) -> bool:
    for unsupported in ("NotAction", "NotResource", "Principal"):
        if unsupported in statement:
            raise NotImplementedError(f"{unsupported} is not simulated in identity policies")
    if not any(_matches(a, request.action, False) for a in _listed(statement["Action"])):
        return False
    if not any(_matches(r, request.resource, True) for r in _listed(statement["Resource"])):
        return False
    return all(
        _condition_holds(operator, key, wanted, request.context)
        for operator, keys in statement.get("Condition", {}).items()
        for key, wanted in keys.items()
    )


def allowed(policy_json: str, request: Request) -> bool:
    """Explicit deny wins, then any allow; nothing applying means the implicit deny."""
    document = json.loads(policy_json)
    statements = document["Statement"]
    statements = [statements] if isinstance(statements, dict) else statements
    applying = [s for s in statements if _applies(s, request)]
    if any(s["Effect"] == "Deny" for s in applying):
        return False
    return any(s["Effect"] == "Allow" for s in applying)
