"""The coordination.k8s.io/v1 Lease a leader election is held in: read, create, update.

Only the transport: what the fields mean, and when to take or renew, is the
elector's (spillover.controller.leadership). Updates carry the resourceVersion the
Lease was last read or written at, so two candidates writing the same version are
told apart by the API server (one gets a 409, ApiConflict), not by timing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from spillover.drivers.kubernetes import ApiObjects


@dataclass(frozen=True)
class LeaseRecord:
    """The election record in a Lease's spec (client-go's LeaderElectionRecord)."""

    holder: str
    """holderIdentity; empty when released."""
    lease_duration_s: int
    acquire_time: str | None
    renew_time: str | None
    transitions: int

    def spec(self) -> dict[str, Any]:
        return {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.lease_duration_s,
            "acquireTime": self.acquire_time,
            "renewTime": self.renew_time,
            "leaseTransitions": self.transitions,
        }


def micro_time(at: float) -> str:
    """A Kubernetes MicroTime: RFC 3339 in UTC with microseconds."""
    return datetime.fromtimestamp(at, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseLock:
    """One Lease, by namespace and name."""

    def __init__(self, objects: ApiObjects, namespace: str, name: str) -> None:
        self.objects = objects
        self.namespace = namespace
        self.name = name
        self._resource_version: str | None = None

    @property
    def describe(self) -> str:
        return f"lease {self.namespace}/{self.name}"

    @property
    def _collection(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases"

    def get(self) -> tuple[LeaseRecord, str] | None:
        """The record and a fingerprint of it (changes with every write), or None if
        the Lease does not exist."""
        lease = self.objects.get(f"{self._collection}/{self.name}")
        if lease is None:
            return None
        self._resource_version = lease["metadata"].get("resourceVersion")
        spec = lease.get("spec") or {}
        record = LeaseRecord(
            holder=spec.get("holderIdentity") or "",
            lease_duration_s=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
        )
        return record, f"{self._resource_version}:{sorted(spec.items())}"

    def create(self, record: LeaseRecord) -> None:
        """ApiConflict if another candidate created it first."""
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": record.spec(),
        }
        self._remember(self.objects.create(self._collection, body))

    def update(self, record: LeaseRecord) -> None:
        """ApiConflict if the Lease changed since this lock last read or wrote it."""
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "resourceVersion": self._resource_version,
            },
            "spec": record.spec(),
        }
        self._remember(self.objects.replace(f"{self._collection}/{self.name}", body))

    def _remember(self, written: dict[str, Any]) -> None:
        self._resource_version = (written.get("metadata") or {}).get("resourceVersion")
