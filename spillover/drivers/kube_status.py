"""The Spillover custom resource (spillovers.spillover.io/v1alpha1): read, create, status.

One object per controller deployment, in the controller's namespace. Its status is
what `kubectl get spillovers` shows; its `spillover.io/paused` annotation is how a
person pauses actuation. The controller creates the object when it is missing (the
first start, or after someone deleted it) and only ever writes its status, through
the status subresource, so it never overwrites what people set in metadata.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spillover.drivers.kube_events import ObjectRef
from spillover.drivers.kubernetes import ApiObjects

GROUP = "spillover.io"
VERSION = "v1alpha1"
PLURAL = "spillovers"
KIND = "Spillover"
PAUSED_ANNOTATION = "spillover.io/paused"
"""Set to "true" to stop actuation; anything else (or absent) means act."""


class StatusResource:
    def __init__(self, objects: ApiObjects, namespace: str, name: str) -> None:
        self.objects = objects
        self.namespace = namespace
        self.name = name

    @property
    def _path(self) -> str:
        return f"/apis/{GROUP}/{VERSION}/namespaces/{self.namespace}/{PLURAL}/{self.name}"

    def read(self) -> dict[str, Any]:
        """The object, created empty when it does not exist."""
        found = self.objects.get(self._path)
        if found is not None:
            return found
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {},
        }
        return self.objects.create(self._path.rsplit("/", 1)[0], body)

    def write_status(self, status: Mapping[str, Any]) -> dict[str, Any]:
        """Merge-patch the status subresource (the API server ignores all but status)."""
        return self.objects.merge_patch(f"{self._path}/status", {"status": dict(status)})


def is_paused(resource: Mapping[str, Any]) -> bool:
    annotations = (resource.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(PAUSED_ANNOTATION, "")).strip().lower() == "true"


def reference_of(resource: Mapping[str, Any]) -> ObjectRef:
    metadata = resource.get("metadata") or {}
    return ObjectRef(
        api_version=f"{GROUP}/{VERSION}",
        kind=KIND,
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        uid=str(metadata.get("uid", "")),
    )
