"""What the controller needs from a pool driver, whichever runs the replicas.

The policy never sees a driver; the observer asks drivers which replicas exist and
the actuators ask them to scale. Local processes and Kubernetes Deployments both
fit behind this; `spillover.drivers.registry` says which driver a pool's `driver:`
key names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class ReplicaTarget:
    """One replica as its driver knows it."""

    name: str
    """Unique across pools (`private-0`, or a pod's name)."""
    pool: str
    alive: bool
    """Its process (or pod) runs; False once it has exited or was evicted."""
    ready: bool
    """Triton answers ready (`/v2/health/ready`, or the pod's Ready condition)."""
    started_at: float
    """When it was started, in seconds since the epoch."""
    metrics_url: str
    """Triton's Prometheus endpoint, e.g. http://127.0.0.1:8012/metrics; empty while
    the replica has no address yet."""
    draining: bool = False
    """Has notice it will be stopped: a spot interruption or a terminating pod; out of
    rotation, still billed until it stops."""
    gateway_server: str | None = None
    """The gateway's server name for this replica, when the gateway has one per
    replica (a local slot). None when the gateway knows the pool only as a whole (in a
    cluster its slots are filled from DNS, and a slot says nothing about which pod it
    holds): then the replica is in rotation when any of its pool's servers is."""
    read_metrics: Callable[[float], str] | None = field(default=None, compare=False, repr=False)
    """(timeout_seconds) -> the metrics text, when its driver reads them itself (a
    burst pod through its API server's pod proxy, unreachable directly across sites);
    None means fetch ``metrics_url``."""


class PoolDriver(Protocol):
    """Runs the replicas of one or more pools."""

    def replicas(self) -> list[ReplicaTarget]:
        """Every replica of the pools this driver runs, starting ones included."""
        ...

    def scale(self, pool: str, replicas: int) -> None:
        """Converge a pool towards `replicas` without waiting for readiness; idempotent.

        Raises TemporaryError when it may work on retry, PermanentError when not.
        """
        ...
