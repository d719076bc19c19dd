"""What the controller needs from a pool driver, whichever runs the replicas.

The policy never sees a driver; the observer asks drivers which replicas exist and
the actuators ask them to scale. Local processes and Kubernetes Deployments both
fit behind this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ReplicaTarget:
    """One replica as its driver knows it."""

    name: str
    """Unique across pools, and the gateway's server name for it (`private-0`)."""
    pool: str
    alive: bool
    """Its process (or pod) runs; False once it has exited or was evicted."""
    ready: bool
    """Triton answers ready (`/v2/health/ready`, or the pod's Ready condition)."""
    started_at: float
    """When it was started, in seconds since the epoch."""
    metrics_url: str
    """Triton's Prometheus endpoint, e.g. http://127.0.0.1:8012/metrics."""
    draining: bool = False
    """Has notice it will be stopped: a spot interruption or a terminating pod; out of
    rotation, still billed until it stops."""


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
