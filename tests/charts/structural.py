"""Kubernetes' rules for a structural CRD schema, as the API server applies them.

From the apiextensions.k8s.io/v1 validation (k8s.io/apiextensions-apiserver,
"Specifying a structural schema"): a v1 CRD whose schema breaks one is refused.

1. Every node has a non-empty ``type``: the root, every property, every
   ``additionalProperties`` and every ``items`` -- except a node with
   ``x-kubernetes-int-or-string: true`` or ``x-kubernetes-preserve-unknown-fields: true``.
2. Inside ``allOf``/``anyOf``/``oneOf``/``not``, every field or item named is also
   specified outside them; and these junctors set no ``description``, ``type``,
   ``default``, ``additionalProperties`` or ``nullable``.
3. ``metadata`` at the root may restrict only ``name`` and ``generateName``; nowhere
   else may set ``metadata`` constraints.
4. ``properties`` and ``additionalProperties`` are not both set; ``additionalProperties:
   false`` is not allowed at all.
5. Keywords the API server forbids in v1 schemas: ``$ref``, ``definitions``,
   ``dependencies``, ``deprecated``, ``discriminator``, ``id``, ``patternProperties``,
   ``readOnly``, ``writeOnly``, ``xml``, and ``uniqueItems: true``.
6. ``x-kubernetes-list-type: map`` needs ``x-kubernetes-list-map-keys`` naming required
   (or defaulted) scalar properties of the items.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

JUNCTORS = ("allOf", "anyOf", "oneOf", "not")
FORBIDDEN = (
    "$ref", "definitions", "dependencies", "deprecated", "discriminator", "id",
    "patternProperties", "readOnly", "writeOnly", "xml",
)  # fmt: skip
NOT_IN_JUNCTORS = ("description", "type", "default", "additionalProperties", "nullable")


def violations(schema: dict[str, Any]) -> list[str]:
    """Every rule the schema breaks, each with the path of the node."""
    found = list(_node(schema, "openAPIV3Schema", in_junctor=False))
    metadata = (schema.get("properties") or {}).get("metadata")
    if metadata is not None:
        extra = set(metadata) - {"type", "properties"} - {"description"}
        inner = set(metadata.get("properties") or {}) - {"name", "generateName"}
        if extra or inner:
            found.append("openAPIV3Schema.properties.metadata: only name and generateName")
    return found


def _node(node: dict[str, Any], path: str, *, in_junctor: bool) -> Iterator[str]:
    for keyword in FORBIDDEN:
        if keyword in node:
            yield f"{path}: {keyword} is forbidden"
    if node.get("uniqueItems") is True:
        yield f"{path}: uniqueItems true is forbidden"
    escape = node.get("x-kubernetes-int-or-string") or node.get(
        "x-kubernetes-preserve-unknown-fields"
    )
    if not in_junctor and not node.get("type") and not escape:
        yield f"{path}: no type"
    if in_junctor:
        for keyword in NOT_IN_JUNCTORS:
            if keyword in node:
                yield f"{path}: {keyword} inside a junctor"
    if "properties" in node and "additionalProperties" in node:
        yield f"{path}: properties and additionalProperties together"
    if node.get("additionalProperties") is False:
        yield f"{path}: additionalProperties false is forbidden"
    if node.get("x-kubernetes-list-type") == "map":
        yield from _list_map(node, path)
    for name, child in (node.get("properties") or {}).items():
        yield from _node(child, f"{path}.properties.{name}", in_junctor=in_junctor)
    if isinstance(node.get("additionalProperties"), dict):
        yield from _node(
            node["additionalProperties"], f"{path}.additionalProperties", in_junctor=in_junctor
        )
    if isinstance(node.get("items"), dict):
        yield from _node(node["items"], f"{path}.items", in_junctor=in_junctor)
    for junctor in JUNCTORS:
        branches = node.get(junctor)
        if branches is None:
            continue
        for index, branch in enumerate(branches if isinstance(branches, list) else [branches]):
            where = f"{path}.{junctor}[{index}]"
            yield from _node(branch, where, in_junctor=True)
            yield from _specified_outside(branch, node, where)


def _specified_outside(branch: dict[str, Any], outer: dict[str, Any], where: str) -> Iterator[str]:
    for name in branch.get("properties") or {}:
        if name not in (outer.get("properties") or {}):
            yield f"{where}.properties.{name}: not specified outside the junctor"
    if "items" in branch and "items" not in outer:
        yield f"{where}.items: not specified outside the junctor"


def _list_map(node: dict[str, Any], path: str) -> Iterator[str]:
    keys = node.get("x-kubernetes-list-map-keys") or []
    items = node.get("items") or {}
    if not keys:
        yield f"{path}: a map list needs x-kubernetes-list-map-keys"
    for key in keys:
        field = (items.get("properties") or {}).get(key)
        if field is None or field.get("type") not in ("string", "integer", "number", "boolean"):
            yield f"{path}: map key {key} is not a scalar property of the items"
        elif key not in (items.get("required") or []) and "default" not in field:
            yield f"{path}: map key {key} must be required or defaulted"
