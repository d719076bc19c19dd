"""The observer's arithmetic: counters read at known times become rates, readings
become phases and shares, and values that cannot be read fresh go stale.

Pure (no clock, no I/O, no drivers): every time here was taken by the caller, when
the value it stamps was read, so a rate divides what was counted by the time that
really passed between the two reads it differences.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from spillover.controller.snapshot import ReplicaObservation, ReplicaPhase
from spillover.drivers.pools import ReplicaTarget

T = TypeVar("T")


@dataclass(frozen=True)
class GatewayReading:
    """What one read of the gateway's counters said, and when it was taken."""

    read_at: float
    """Monotonic seconds at the read (the middle of the call that made it)."""
    requests_total: int
    """Requests arrived at the traffic frontends since the gateway started."""
    pool_totals: Mapping[str, tuple[int, int]]
    """Per pool, cumulative (responses, 5xx) its servers gave."""
    server_ready: Mapping[str, bool]
    """Per server: ready on every backend that lists it."""
    pool_ready: Mapping[str, bool]
    """Per pool: some server of it is ready."""
    pool_weights: Mapping[str, int]
    """Per pool, the summed weight of its ready servers on one backend."""


def demand(previous: GatewayReading | None, current: GatewayReading | None) -> float | None:
    """Requests per second arriving at the traffic frontends, served or not."""
    seconds = _between(previous, current)
    if seconds is None:
        return None
    assert previous is not None and current is not None
    arrived = current.requests_total - previous.requests_total
    if arrived < 0:  # the gateway restarted: its counters began again at 0
        return None
    return arrived / seconds


def gateway_rates(
    previous: GatewayReading | None, current: GatewayReading | None, pool: str
) -> tuple[float, float] | None:
    """(responses/s, 5xx/s) the pool's servers gave over the interval; None if unknown."""
    seconds = _between(previous, current)
    if seconds is None:
        return None
    assert previous is not None and current is not None
    before = previous.pool_totals.get(pool, (0, 0))
    after = current.pool_totals.get(pool, (0, 0))
    responses, errors = after[0] - before[0], after[1] - before[1]
    if responses < 0 or errors < 0:
        return None
    return responses / seconds, errors / seconds


def _between(previous: GatewayReading | None, current: GatewayReading | None) -> float | None:
    if previous is None or current is None or current.read_at <= previous.read_at:
        return None
    return current.read_at - previous.read_at


def replica_observation(
    replica: ReplicaTarget, server_ready: Mapping[str, bool], pool_ready: Mapping[str, bool]
) -> ReplicaObservation:
    """Ready once the driver and the gateway both say so: its own gateway server when
    it has one, else some server of its pool. A live replica with notice it will be
    stopped is draining, whatever its readiness."""
    phase: ReplicaPhase = "starting"
    if not replica.alive:
        phase = "failed"
    elif replica.draining:
        phase = "draining"
    elif replica.ready:
        if replica.gateway_server is not None:
            in_rotation = server_ready.get(replica.gateway_server, False)
        else:
            in_rotation = pool_ready.get(replica.pool, False)
        if in_rotation:
            phase = "ready"
    return ReplicaObservation(replica.name, phase, replica.started_at)


def percentages(weights: Mapping[str, int]) -> dict[str, int]:
    """Shares in whole percent summing to 100 (largest remainders get the leftovers)."""
    total = sum(weights.values())
    if total == 0:
        return dict(weights)
    exact = {pool: 100 * weight / total for pool, weight in weights.items()}
    shares = {pool: int(value) for pool, value in exact.items()}
    by_remainder = sorted(exact, key=lambda pool: exact[pool] - shares[pool], reverse=True)
    for pool in by_remainder[: 100 - sum(shares.values())]:
        shares[pool] += 1
    return shares


class Recent:
    """Values last read fresh, with when; reused only while younger than max_age."""

    def __init__(self, max_age_s: float) -> None:
        self.max_age_s = max_age_s
        self._values: dict[object, tuple[Any, float]] = {}

    def get(self, key: object, fresh: T | None, now: float) -> T | None:
        """`fresh` when it is not None (and remember it), else the remembered value
        while it is young enough, else None."""
        if fresh is not None:
            self._values[key] = (fresh, now)
            return fresh
        remembered = self._values.get(key)
        if remembered is not None and now - remembered[1] < self.max_age_s:
            value: T = remembered[0]
            return value
        return None
