"""The AWS API calls a Python package makes through boto3/botocore clients, read from its source.

A client is whatever `<anything>.client("<service>", ...)` (boto3) or `.create_client(...)`
(botocore) returns, bound to a name or an
attribute (`ec2 = session.client("ec2")`, `self._eks = boto3.client("eks")`); a call is a
method called on that binding, or an operation a paginator or presigned URL names. Each maps to
its IAM action by the service's IAM prefix and the operation's CamelCase name.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

IAM_PREFIX = {
    "autoscaling": "autoscaling",
    "ce": "ce",
    "ec2": "ec2",
    "eks": "eks",
    "pricing": "pricing",
    "s3": "s3",
    "sts": "sts",
}
"""boto3 service name -> IAM action prefix; a service missing here fails the scan."""

NEEDS_NO_PERMISSION = {"sts:GetCallerIdentity"}
"""Operations IAM never denies: GetCallerIdentity works even under an explicit deny."""

CLIENT_HELPERS = {
    "can_paginate",
    "close",
    "exceptions",
    "get_paginator",
    "get_waiter",
    "generate_presigned_url",
    "meta",
}
"""Client methods that are not API operations themselves."""


class UnreadableCall(AssertionError):
    """A client whose service, or a call whose operation, the scan cannot read from the source."""


def _camel(snake: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in snake.split("_"))


def _binding(node: ast.expr) -> str | None:
    """`name` or `self.attr` (as 'self.attr'), the forms a client is kept in."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return f"{node.value.id}.{node.attr}"
    return None


def _client_service(node: ast.expr, where: str) -> str | None:
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("client", "create_client")
    ):
        return None
    first = (
        node.args[0]
        if node.args
        else next((k.value for k in node.keywords if k.arg == "service_name"), None)
    )
    if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
        raise UnreadableCall(f"{where}: a client whose service is not a string literal")
    return first.value


def _named_operation(call: ast.Call) -> str | None:
    """The operation a paginator or presigned URL is for, when written as a literal."""
    for keyword in call.keywords:
        if keyword.arg in ("ClientMethod", "operation_name") and isinstance(
            keyword.value, ast.Constant
        ):
            return str(keyword.value.value)
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    return None


def _action(service: str, operation: str, where: str) -> str:
    if service not in IAM_PREFIX:
        raise UnreadableCall(f"{where}: service {service!r} has no IAM prefix in aws_calls.py")
    name = operation if operation[:1].isupper() else _camel(operation)
    return f"{IAM_PREFIX[service]}:{name}"


def calls_in_source(source: str, where: str = "<source>") -> set[str]:
    """IAM actions of the AWS calls in one module's source."""
    tree = ast.parse(source)
    clients: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            service = _client_service(node.value, f"{where}:{node.lineno}")
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if service and (name := _binding(target)):
                    clients[name] = service
    actions: set[str] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        here = f"{where}:{node.lineno}"
        receiver = node.func.value
        service = clients.get(_binding(receiver) or "") or _client_service(receiver, here)
        if service is None:
            continue
        method = node.func.attr
        if method in ("get_paginator", "generate_presigned_url"):
            operation = _named_operation(node)
            if operation is None:
                raise UnreadableCall(f"{here}: {method} without a literal operation")
            actions.add(_action(service, operation, here))
        elif method not in CLIENT_HELPERS:
            actions.add(_action(service, method, here))
    return actions


def calls_in_package(root: Path) -> dict[str, set[str]]:
    """IAM action -> the modules (relative paths) that make that call, for every .py under root."""
    found: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        where = str(path.relative_to(root.parent))
        for action in calls_in_source(path.read_text(), where):
            found.setdefault(action, set()).add(where)
    return found


def needing_permission(actions: Iterable[str]) -> set[str]:
    return {action for action in actions if action not in NEEDS_NO_PERMISSION}
