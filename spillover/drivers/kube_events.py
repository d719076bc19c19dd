"""Kubernetes Events (core/v1): create one, or count a repeat of it.

What `kubectl describe` lists under Events is core/v1 Events whose involvedObject
names the object, uid included (kubectl filters on it), so every reference here
carries the object's uid. Deduplication (which event is a repeat) is the
recorder's (spillover.controller.events); this module only writes.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from spillover.drivers.kubernetes import ApiNotFound, ApiObjects

COMPONENT = "spillover-controller"


@dataclass(frozen=True)
class ObjectRef:
    """The object an Event is about."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str

    def as_involved_object(self) -> dict[str, str]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
        }


def event_time(at: float) -> str:
    """metav1.Time: RFC 3339, whole seconds, UTC."""
    return datetime.fromtimestamp(at, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventSink:
    """Events in one cluster (each pool's Deployment may live in its own)."""

    def __init__(self, objects: ApiObjects, instance: str) -> None:
        self.objects = objects
        self.instance = instance
        """reportingInstance: which controller process wrote it."""
        self._sequence = itertools.count()

    def create(self, about: ObjectRef, kind: str, reason: str, message: str, at: float) -> str:
        """A new Event with count 1; returns its name."""
        # client-go names events <object>.<unix nanoseconds in hex>: unique and sortable.
        # Several are written in one tick, faster than the clock may tick: add a sequence.
        name = f"{about.name}.{time.time_ns() + next(self._sequence):x}"
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": about.namespace},
            "involvedObject": about.as_involved_object(),
            "type": kind,
            "reason": reason,
            "message": message,
            "count": 1,
            "firstTimestamp": event_time(at),
            "lastTimestamp": event_time(at),
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.instance,
        }
        self.objects.create(f"/api/v1/namespaces/{about.namespace}/events", body)
        return name

    def count_repeat(self, namespace: str, name: str, count: int, at: float, message: str) -> bool:
        """Bump an Event's count and lastTimestamp; False if it is gone (Events expire
        after the API server's --event-ttl, an hour by default)."""
        patch = {"count": count, "lastTimestamp": event_time(at), "message": message}
        try:
            self.objects.merge_patch(f"/api/v1/namespaces/{namespace}/events/{name}", patch)
        except ApiNotFound:
            return False
        return True

    def deployment(self, namespace: str, name: str) -> ObjectRef | None:
        """A reference to a Deployment, with its uid; None if it does not exist."""
        found: dict[str, Any] | None = self.objects.get(
            f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
        )
        if found is None:
            return None
        return ObjectRef("apps/v1", "Deployment", namespace, name, found["metadata"]["uid"])
