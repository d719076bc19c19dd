"""The fake API server's store of plain objects: Leases, Spillover resources, Events.

What any API server's storage does for every kind, and nothing kind-specific: create
answers 409 AlreadyExists for a taken name; a PUT whose metadata.resourceVersion is
not the stored one answers 409 Conflict; every write bumps one global
resourceVersion; merge patches follow RFC 7386. Server-side semantics of particular
kinds are deliberately absent: a ``/status`` PATCH is applied like any merge patch
(a real status subresource drops everything but status), no printer columns, no
schema validation, no Event TTL. Those are checked by the ``real_cluster`` tests.
"""

from __future__ import annotations

import copy
import re
import threading
import uuid
from typing import Any

OBJECT_PATHS = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[^/]+)/(?P<version>[^/]+))/namespaces/(?P<namespace>[^/]+)/"
    r"(?P<plural>leases|spillovers|events)(?:/(?P<name>[^/]+))?(?P<status>/status)?$"
)
KINDS = {"leases": "Lease", "spillovers": "Spillover", "events": "Event"}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class ObjectStore:
    """(plural, namespace, name) -> object, shared by the server's threads."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._version = 1000
        self._lock = threading.Lock()

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            found = self.objects.get((plural, namespace, name))
            return copy.deepcopy(found) if found is not None else None

    def of_kind(self, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                copy.deepcopy(obj)
                for (kind, ns, _), obj in sorted(self.objects.items())
                if kind == plural and namespace in (None, ns)
            ]

    def put_directly(self, plural: str, namespace: str, obj: dict[str, Any]) -> None:
        """What another client (kubectl, a test) writes: stored and versioned."""
        with self._lock:
            self._store(plural, namespace, obj["metadata"]["name"], copy.deepcopy(obj))

    def answer(
        self, method: str, match: re.Match[str], body: Any
    ) -> tuple[int, dict[str, Any] | str]:
        """(status code, object) or (status code, message) for an error."""
        plural, namespace, name = match["plural"], match["namespace"], match["name"]
        with self._lock:
            if method == "POST" and name is None:
                return self._create(plural, namespace, body)
            if name is None:
                return 405, "the fake answers list on no collection"
            key = (plural, namespace, name)
            stored = self.objects.get(key)
            if stored is None:
                return 404, f'{plural} "{name}" not found'
            if method == "GET":
                return 200, copy.deepcopy(stored)
            if method == "PUT":
                sent = (body.get("metadata") or {}).get("resourceVersion")
                if sent != stored["metadata"]["resourceVersion"]:
                    return 409, (
                        f'Operation cannot be fulfilled on {plural} "{name}": the object has '
                        "been modified; please apply your changes to the latest version and "
                        "try again"
                    )
                replaced = copy.deepcopy(body)
                replaced["metadata"] = {**stored["metadata"], **replaced["metadata"]}
                return 200, self._store(plural, namespace, name, replaced)
            if method == "PATCH":
                patched = merge_patch(stored, body)
                patched["metadata"]["name"] = name
                return 200, self._store(plural, namespace, name, patched)
            return 405, f"method {method} not allowed"

    def _create(self, plural: str, namespace: str, body: Any) -> tuple[int, Any]:
        name = (body.get("metadata") or {}).get("name")
        if not name:
            return 422, "metadata.name: Required value"
        if (plural, namespace, name) in self.objects:
            return 409, f'{plural} "{name}" already exists'
        created = copy.deepcopy(body)
        created["metadata"] = {
            **created["metadata"],
            "namespace": namespace,
            "uid": str(uuid.uuid4()),
            "creationTimestamp": "2025-11-11T00:00:00Z",
        }
        return 201, self._store(plural, namespace, name, created)

    def _store(self, plural: str, namespace: str, name: str, obj: dict[str, Any]) -> Any:
        self._version += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._version)
        obj["metadata"].setdefault("namespace", namespace)
        obj.setdefault("kind", KINDS[plural])
        self.objects[(plural, namespace, name)] = obj
        return copy.deepcopy(obj)
