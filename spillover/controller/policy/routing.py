"""Traffic shares: private first up to its target utilization, overflow to burst,
only ever to pools with ready replicas."""

from __future__ import annotations

from collections.abc import Mapping

from spillover.config import PoolConfig


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
        return _percentages({name: 1.0 if name == serving[0] else 0.0 for name in serving}, pools)
    load: dict[str, float] = {}
    left = demand_rps
    for name in serving:
        load[name] = min(left, full[name] * utilization)
        left -= load[name]
    if left > 1e-9:  # over every target: spread the excess by full capacity
        total = sum(full.values())
        for name in serving:
            load[name] += left * full[name] / total
    return _percentages(load, pools)


def _percentages(load: Mapping[str, float], pools: list[PoolConfig]) -> dict[str, int]:
    """Integer percentages by largest remainder, so they sum to exactly 100."""
    total = sum(load.values())
    exact = {pool.name: 100 * load.get(pool.name, 0.0) / total for pool in pools}
    result = {name: int(value) for name, value in exact.items()}
    by_remainder = sorted(exact, key=lambda name: exact[name] - result[name], reverse=True)
    for name in by_remainder[: 100 - sum(result.values())]:
        result[name] += 1
    return result
