"""How many requests per second one replica of a pool can take."""

from __future__ import annotations

from collections.abc import Mapping

from spillover.config import PoolConfig, Slo
from spillover.controller.snapshot import PoolObservation

LEARNING_SMOOTHING = 0.3
"""EWMA weight of a new service-rate measurement: one busy interval should nudge the
estimate, not replace it."""


def learn(previous: float | None, measured: float | None) -> float | None:
    """Fold a measured service rate into the learned one."""
    if measured is None:
        return previous
    if previous is None:
        return measured
    return LEARNING_SMOOTHING * measured + (1 - LEARNING_SMOOTHING) * previous


def per_replica(
    pool: PoolConfig, learned: Mapping[str, float | None], order: list[str]
) -> tuple[float | None, str]:
    """Configured capacity, else this pool's learned one, else the first learned one
    of another pool (same model; an assumption until this pool has served traffic)."""
    if pool.capacity_rps is not None:
        return pool.capacity_rps, "configured"
    own = learned.get(pool.name)
    if own is not None:
        return own, "measured"
    for other in order:
        if learned.get(other) is not None:
            return learned[other], f"assumed like {other} until measured"
    return None, "not measured yet"


def saturation_limited(
    capacity: float, observation: PoolObservation, slo: Slo
) -> tuple[float, str | None]:
    """A pool whose queue time is over target serves no more than it does now,
    whatever its estimate says: plan with what it actually gets through."""
    queue = observation.queue_time_ms
    if queue is None or queue <= slo.queue_time_ms or not observation.ready:
        return capacity, None
    if observation.served_rps is None:
        return capacity, None
    achieved = observation.served_rps / observation.ready
    if achieved >= capacity:
        return capacity, None
    return achieved, (
        f"queue time {queue:.1f} ms is over the {slo.queue_time_ms:g} ms target, "
        f"so a replica counts as {achieved:.0f} rps"
    )
