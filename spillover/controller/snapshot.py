"""What the controller saw at one tick: plain values, no behaviour.

A value the observer could not get fresh is None (stale), never 0: zero load and
unknown load call for opposite decisions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

ReplicaPhase = Literal["starting", "ready", "draining", "failed"]
"""starting: asked for, not serving yet. ready: Triton ready and the gateway's health
check passes. draining: alive, but told it will be stopped (a spot interruption, a
terminating pod): out of rotation, still billed, never capacity. failed: its process
died or its health check fails after it was ready."""


@dataclass(frozen=True)
class ReplicaObservation:
    """One replica of a pool."""

    name: str
    phase: ReplicaPhase
    started_at: float
    """When the driver started it, on the controller's clock (seconds)."""


@dataclass(frozen=True)
class PoolObservation:
    """One pool: its replicas from the driver, its traffic from the gateway and Triton."""

    name: str
    replicas: tuple[ReplicaObservation, ...] = ()
    served_rps: float | None = None
    """Requests per second the gateway sent to this pool."""
    failed_rps: float | None = None
    """Failed requests per second (Triton failures and gateway 5xx)."""
    queue_time_ms: float | None = None
    """Average time a request waited in Triton's queue over the last interval."""
    queue_time_p99_ms: float | None = None
    """Worst replica's average queue time over the last interval: a p99-ish signal."""
    service_rate_rps: float | None = None
    """Requests per second one replica serves when fully busy, measured from Triton's
    busy time; None until traffic has flowed."""
    busy_share: float | None = None
    """Share of the billed replicas' time Triton was busy over the last interval (0..1);
    starting and draining replicas count as idle. None: not measured."""
    metrics_age_s: float | None = None
    """Seconds since the freshest successful Triton /metrics scrape of any of the
    pool's ready replicas (one never scraped counts from when it was first listed);
    None when the pool has no ready replica. Large while the gateway still routes to
    the pool: its Triton metrics are unreachable."""

    def count(self, phase: ReplicaPhase) -> int:
        return self._phase_counts.get(phase, 0)

    @cached_property
    def _phase_counts(self) -> dict[str, int]:
        """Counted once: the policy asks a pool's counts many times a tick, and a pool
        may have thousands of replicas (the fleet simulator's)."""
        counts: dict[str, int] = {}
        for replica in self.replicas:
            counts[replica.phase] = counts.get(replica.phase, 0) + 1
        return counts

    @cached_property
    def oldest_starting_at(self) -> float | None:
        """When the longest-starting replica was started; None when none is starting."""
        starts = [replica.started_at for replica in self.replicas if replica.phase == "starting"]
        return min(starts) if starts else None

    @property
    def ready(self) -> int:
        return self.count("ready")

    @property
    def starting(self) -> int:
        return self.count("starting")

    @property
    def draining(self) -> int:
        return self.count("draining")

    @property
    def running(self) -> int:
        """Replicas that cost money: ready, starting or draining."""
        return self.ready + self.starting + self.draining


@dataclass(frozen=True)
class Snapshot:
    """Everything one tick's decision rests on."""

    at: float
    """When it was taken, on the controller's clock (seconds since the epoch)."""
    demand_rps: float | None
    """Requests per second arriving at the gateway; None when stale."""
    pools: tuple[PoolObservation, ...]
    weights: Mapping[str, int] = field(default_factory=dict)
    """Traffic share per pool now in force at the gateway (percent)."""
    burst_spend_this_month_usd: float = 0.0
    """Burst spend recorded in the ledger since the start of this UTC month."""

    def pool(self, name: str) -> PoolObservation:
        found = self._by_name.get(name)
        if found is None:
            return PoolObservation(name)  # a pool the driver knows nothing of has no replicas
        return found

    @cached_property
    def _by_name(self) -> dict[str, PoolObservation]:
        by_name: dict[str, PoolObservation] = {}
        for pool in self.pools:
            by_name.setdefault(pool.name, pool)  # the first of a name, as a scan finds it
        return by_name
