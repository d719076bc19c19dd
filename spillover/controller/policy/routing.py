"""Traffic shares: private first up to its target utilization, overflow to burst,
only ever to pools with ready replicas."""

from __future__ import annotations

from collections.abc import Mapping

from spillover.config import PoolConfig

WARM_SHARE_PERCENT = 1
"""Every pool with a ready replica keeps at least this share of traffic. HAProxy only
fails over to servers with a weight: a warm pool at 0 would sit idle through a private
crash until the controller's next tick, while with a trickle the gateway moves all
traffic to it the moment private is marked down (and real requests keep it verified)."""


def shares(
    pools: list[PoolConfig],
    ready: Mapping[str, int],
    capacity: Mapping[str, float | None],
    demand_rps: float,
    utilization: float,
) -> dict[str, int] | None:
    """Percent per pool (summing to 100) for pools in preference order, or None when
    no pool has a ready replica."""
    serving = [pool.name for pool in pools if ready.get(pool.name, 0) > 0]
    if not serving:
        return None
    # Unknown capacity: every ready replica counts the same (one unit).
    full = {name: ready[name] * (capacity.get(name) or 1.0) for name in serving}
    if demand_rps <= 0:
        idle = {name: 1.0 if name == serving[0] else 0.0 for name in serving}
        return _keep_warm(_percentages(idle, pools), serving)
    load: dict[str, float] = {}
    left = demand_rps
    for name in serving:
        load[name] = min(left, full[name] * utilization)
        left -= load[name]
    if left > 1e-9:  # over every target: spread the excess by full capacity
        total = sum(full.values())
        for name in serving:
            load[name] += left * full[name] / total
    return _keep_warm(_percentages(load, pools), serving)


def _keep_warm(percent: dict[str, int], serving: list[str]) -> dict[str, int]:
    """Raise every serving pool to WARM_SHARE_PERCENT, taken from the largest share."""
    for name in serving:
        if percent[name] < WARM_SHARE_PERCENT:
            largest = max(percent, key=lambda pool: percent[pool])
            moved = min(WARM_SHARE_PERCENT - percent[name], percent[largest] - WARM_SHARE_PERCENT)
            percent[largest] -= moved
            percent[name] += moved
    return percent


def _percentages(load: Mapping[str, float], pools: list[PoolConfig]) -> dict[str, int]:
    """Integer percentages by largest remainder, so they sum to exactly 100."""
    total = sum(load.values())
    exact = {pool.name: 100 * load.get(pool.name, 0.0) / total for pool in pools}
    result = {name: int(value) for name, value in exact.items()}
    by_remainder = sorted(exact, key=lambda name: exact[name] - result[name], reverse=True)
    for name in by_remainder[: 100 - sum(result.values())]:
        result[name] += 1
    return result
