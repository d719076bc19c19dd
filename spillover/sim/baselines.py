"""The runs compared side by side, and the perfect-foresight lower bound.

Every baseline runs on the same trace and the same world (seed, faults, prices); they
differ only in which pools they have and who decides:

- spillover: the configured pools, the real policy;
- spillover + calendar: the same, with the trace's known events (11.11) on the
  policy's calendar (`policy.known_events`), so burst is pre-warmed for them;
- private only: the private pools alone, the real policy (no burst to spill to);
- cloud only, on-demand: the on-demand burst pools alone;
- cloud only, spot + on-demand fallback: the burst pools alone;
- reactive (HPA): the configured pools, HPA's rule instead of the policy.

The lower bound knows the trace: at every second it buys the cheapest capacity whose
p99 is within the SLO (the queueing model's own limit per replica count), with no
cold start, no interruption and no floor; owned GPUs are a sunk cost, charged for all
that are owned, the whole time.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from spillover.config import KnownEvent, PoolConfig, SpilloverConfig
from spillover.sim import queueing
from spillover.sim.run import Progress, RunResult, run
from spillover.sim.settings import SimSettings, base_latency_ms, capacity_rps
from spillover.sim.traces import Trace
from spillover.sim.world import builtin_spot_prices

BASELINES = (
    "spillover",
    "spillover + calendar",
    "private only",
    "cloud on-demand",
    "cloud spot+fallback",
    "reactive (HPA)",
)


@dataclass(frozen=True)
class LowerBound:
    total_cost: float
    cost_by_pool: dict[str, float]


def variant(
    config: SpilloverConfig, name: str, trace: Trace | None = None
) -> SpilloverConfig | None:
    """The config a baseline runs, or None when the fleet has no pools for it (or, for
    the calendar run, the trace has no known event)."""
    if name in ("spillover", "reactive (HPA)"):
        return config
    if name == "spillover + calendar":
        if trace is None or not trace.known:
            return None
        events = tuple(
            KnownEvent(
                name=event_name,
                start=datetime.fromtimestamp(trace.start + offset, tz=timezone.utc),
                peak_multiple=multiple,
                duration_seconds=duration,
            )
            for offset, event_name, multiple, duration in trace.known
        )
        policy = config.policy.model_copy(update={"known_events": events})
        return config.model_copy(update={"policy": policy})
    if name == "private only":
        keep = [p for p in config.pools if p.role == "private"]
    elif name == "cloud on-demand":
        keep = [p for p in config.pools if p.capacity_type == "on-demand"]
    else:
        keep = [p for p in config.pools if p.role == "burst"]
    if not keep:
        return None
    if name != "private only":
        # Cloud only has no private floor: its cheapest pool keeps at least one warm.
        keep[0] = keep[0].model_copy(update={"min_replicas": max(keep[0].min_replicas, 1)})
    return config.model_copy(update={"pools": keep})


def run_all(
    config: SpilloverConfig,
    settings: SimSettings,
    trace: Trace,
    work_dir: Path,
    names: tuple[str, ...] = BASELINES,
    progress: Progress | None = None,
    jobs: int = 1,
) -> list[RunResult]:
    """Every run named, in order. jobs > 1: that many runs at once, each in its own
    process (they share nothing: each has its world, its loop and its ledger file)."""
    planned = []
    for name in names:
        chosen = variant(config, name, trace)
        if chosen is None:
            continue
        decider = "reactive" if name.startswith("reactive") else "policy"
        stem = name.replace(" ", "-").replace("(", "").replace(")", "").replace("+", "-")
        planned.append((name, chosen, settings, trace, work_dir / f"{stem}.db", decider))
    if jobs <= 1 or len(planned) <= 1:
        return [run(*arguments, progress) for arguments in planned]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(run, *arguments) for arguments in planned]
        results = []
        for future in futures:
            result = future.result()
            if progress is not None:
                progress.report(result.name, result.seconds, result.seconds)
            results.append(result)
        return results


def lower_bound(config: SpilloverConfig, settings: SimSettings, trace: Trace) -> LowerBound:
    slo = config.slo.p99_latency_ms
    private = [p for p in config.pools if p.role == "private"]
    burst = [p for p in config.pools if p.role == "burst"]
    seconds = trace.seconds
    cost = {p.name: p.max_replicas * p.price.hourly_usd * seconds / 3600 for p in private}
    private_limit = sum(
        queueing.max_load_within_slo(
            p.max_replicas,
            capacity_rps(p, settings.world(p)),
            base_latency_ms(p, settings.world(p)),
            slo,
        )
        for p in private
    )
    tables = {p.name: _load_table(p, settings, slo) for p in burst}
    prices = {p.name: _price_lookup(p, settings) for p in burst}
    for p in burst:
        cost[p.name] = 0.0
    unavailable = {p.name: settings.world(p).unavailable for p in burst}
    rps = trace.rps
    for second in range(seconds):
        overflow = rps[second] - private_limit
        if overflow <= 0 or not burst:
            continue
        candidates = sorted(
            (prices[p.name](second), p)
            for p in burst
            if not any(w.covers(second) for w in unavailable[p.name])
        )
        for price, pool in candidates:
            table = tables[pool.name]
            needed = bisect.bisect_left(table, overflow)
            count = min(needed, pool.max_replicas)
            cost[pool.name] += count * price / 3600
            overflow -= table[count]
            if overflow <= 1e-9:
                break
    return LowerBound(sum(cost.values()), cost)


def _load_table(pool: PoolConfig, settings: SimSettings, slo_ms: float) -> list[float]:
    """table[n]: the most rps n replicas serve within the SLO (ascending in n)."""
    world = settings.world(pool)
    capacity, base = capacity_rps(pool, world), base_latency_ms(pool, world)
    return [
        queueing.max_load_within_slo(n, capacity, base, slo_ms)
        for n in range(pool.max_replicas + 1)
    ]


def _price_lookup(pool: PoolConfig, settings: SimSettings) -> Callable[[int], float]:
    series = settings.world(pool).prices
    if series is None:
        series = builtin_spot_prices(pool, settings.seed) if pool.capacity_type == "spot" else ()
    if not series:
        fixed = pool.price.hourly_usd
        return lambda second: fixed
    starts = [point.at_s for point in series]
    values = [point.usd_per_replica_hour for point in series]

    def at(second: int) -> float:
        index = bisect.bisect_right(starts, second) - 1
        return values[index] if index >= 0 else pool.price.hourly_usd

    return at
