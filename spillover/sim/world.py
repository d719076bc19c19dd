"""The simulated world, second by second: pools on the simulated driver, the gateway
that routes by the controller's weights, the faults on their timeline, and what an
observer would read of it all.

The controller sees this world only through the loop's own seams: `SimObserver`
(an `Observing`, what the real Observer returns from HAProxy and Triton), the pool
drivers from the registry (`scale`), and `SimGateway` (`set_weights`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial

from spillover.config import PoolConfig, SpilloverConfig
from spillover.controller.policy import sizing
from spillover.controller.snapshot import PoolObservation, ReplicaObservation, Snapshot
from spillover.drivers.simulated import SimulatedPool
from spillover.sim import queueing
from spillover.sim.settings import (
    PoolWorld,
    PricePoint,
    SimSettings,
    base_latency_ms,
    capacity_rps,
    cold_start_sampler,
    cold_start_steps,
)


class SimGateway:
    """The gateway actuator: the shares the controller set, in force from the next second."""

    def __init__(self, weights: Mapping[str, int]) -> None:
        self.weights: dict[str, int] = dict(weights)

    def set_weights(self, shares: Mapping[str, int]) -> None:
        self.weights = dict(shares)


@dataclass
class SecondTotals:
    """Sums over the run (requests are fractional: rates times one second)."""

    arrived: float = 0.0
    served: float = 0.0
    failed: float = 0.0
    within_slo: float = 0.0
    seconds_meeting_slo: int = 0
    interruptions: int = 0


@dataclass
class MinuteSeries:
    """Per-minute aggregates for plots: memory grows with minutes, not requests."""

    pools: list[str]
    demand: list[float] = field(default_factory=list)
    failed: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    cost_usd_per_hour: list[float] = field(default_factory=list)
    capacity: dict[str, list[float]] = field(default_factory=dict)
    running: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.capacity = {name: [] for name in self.pools}
        self.running = {name: [] for name in self.pools}


class World:
    """Pools, gateway and faults on one simulated clock."""

    def __init__(
        self,
        config: SpilloverConfig,
        settings: SimSettings,
        drivers: Mapping[str, SimulatedPool],
        start: float,
        initial_rps: float = 0.0,
    ) -> None:
        self.config = config
        self.settings = settings
        self.start = start
        self.now = start
        self.rng = random.Random(settings.seed)
        self.drivers = dict(drivers)
        self.pools = list(config.pools)
        self.worlds: dict[str, PoolWorld] = {pool.name: settings.world(pool) for pool in self.pools}
        self.capacity = {
            pool.name: capacity_rps(pool, self.worlds[pool.name]) for pool in self.pools
        }
        self.base_ms = {
            pool.name: base_latency_ms(pool, self.worlds[pool.name]) for pool in self.pools
        }
        left = initial_rps
        usable = config.policy.target_utilization
        for pool in sizing.preference_order(config):
            driver = self.drivers[pool.name]
            driver.clock = self.clock
            steps = cold_start_steps(pool, self.worlds[pool.name])
            driver.cold_start = cold_start_sampler(
                steps, random.Random(f"{settings.seed}-{pool.name}")
            )
            # Warm at the start, as after hours of this demand: every run begins with
            # what the first second needs (cheapest first), at least the floor.
            needed = math.ceil(max(left, 0.0) / (self.capacity[pool.name] * usable))
            count = min(max(needed, pool.min_replicas), pool.max_replicas)
            left -= count * self.capacity[pool.name] * usable
            driver.scale(pool.name, count)
            driver.advance(math.inf)
        # The gateway starts with weights by ready capacity, as its config would give it.
        self.gateway = SimGateway(
            {
                p.name: self.drivers[p.name].counts["ready"] * int(self.capacity[p.name])
                for p in self.pools
            }
        )
        self.prices = {pool.name: pool.price.hourly_usd for pool in self.pools}
        self.on_price: Callable[[str, float], None] = lambda pool, price: None
        self.metrics_down_since: float | None = None
        self.counters = {pool.name: [0.0, 0.0] for pool in self.pools}
        """Per pool, cumulative (served, failed) requests at the gateway."""
        self.arrived_total = 0.0
        self.totals = SecondTotals()
        self.series = MinuteSeries([pool.name for pool in self.pools])
        self.latency: dict[str, queueing.PoolLatency] = {}
        self._minute: list[float] = [0.0] * (4 + 2 * len(self.pools))
        self._timeline = self._fault_timeline()
        self._price_steps = self._price_timeline()

    def clock(self) -> float:
        return self.now

    # --- one second --------------------------------------------------------------------

    def begin_second(self, second: int) -> None:
        """Faults, prices, cold starts, notices and interruptions at the top of a second."""
        self.now = self.start + second
        for action in self._timeline.get(second, ()):
            action()
        for name, price in self._price_steps.get(second, ()):
            self.prices[name] = price
            self.on_price(name, price)
        for pool in self.pools:
            driver = self.drivers[pool.name]
            driver.advance(self.now)
            if pool.capacity_type == "spot":
                self._interruptions(pool, driver)

    def serve(self, second: int, demand: float) -> None:
        """Route one second of demand by the gateway's weights and serve it."""
        weights = {
            name: weight
            for name, weight in self.gateway.weights.items()
            if weight > 0 and name in self.drivers and self.drivers[name].counts["ready"] > 0
        }
        total_weight = sum(weights.values())
        served = failed = within = 0.0
        worst_p99 = 0.0
        self.latency = {}
        for pool in self.pools:
            name = pool.name
            share = weights.get(name, 0) / total_weight if total_weight else 0.0
            result = queueing.pool_latency(
                demand * share,
                self.drivers[name].counts["ready"],
                self.capacity[name],
                self.base_ms[name],
                self.config.slo.p99_latency_ms,
            )
            self.latency[name] = result
            counter = self.counters[name]
            counter[0] += result.served_rps
            counter[1] += result.failed_rps
            served += result.served_rps
            failed += result.failed_rps
            within += result.within_slo_rps
            if result.served_rps > 0:
                worst_p99 = max(worst_p99, result.p99_ms)
        if not total_weight:
            failed += demand  # no server to send it to: the gateway answers 503
        self.arrived_total += demand
        totals = self.totals
        totals.arrived += demand
        totals.served += served
        totals.failed += failed
        totals.within_slo += within
        if demand <= 0 or within >= queueing.SLO_QUANTILE * demand:
            totals.seconds_meeting_slo += 1
        self._aggregate(second, demand, failed, worst_p99)

    def cost_rate(self) -> float:
        """Dollars per hour of everything running now, at current prices."""
        return sum(self.drivers[name].running * self.prices[name] for name in self.drivers)

    # --- the world's events -----------------------------------------------------------

    def _interruptions(self, pool: PoolConfig, driver: SimulatedPool) -> None:
        world = self.worlds[pool.name]
        expected = world.interruptions_per_replica_hour * driver.counts["ready"] / 3600
        if expected <= 0:
            return
        count = _poisson(self.rng, expected)
        if count:
            self.totals.interruptions += driver.interrupt(
                count, self.now, world.notice_seconds, self.rng.sample
            )

    def _fault_timeline(self) -> dict[int, list[Callable[[], None]]]:
        timeline: dict[int, list[Callable[[], None]]] = {}

        def at(second: float, action: Callable[[], None]) -> None:
            timeline.setdefault(int(second), []).append(action)

        for pool in self.pools:
            driver = self.drivers[pool.name]
            for window in self.worlds[pool.name].unavailable:
                at(window.at_s, partial(self._set_capacity, driver, False))
                at(window.at_s + window.duration_s, partial(self._set_capacity, driver, True))
        for fault in self.settings.faults:
            end = fault.at_s + fault.duration_s
            if fault.kind == "site-loss":
                lost = [
                    p
                    for p in self.pools
                    if (p.name == fault.pool if fault.pool else p.role == "private")
                ]
                for pool in lost:
                    driver = self.drivers[pool.name]
                    at(fault.at_s, driver.lose_site)
                    at(end, partial(self._restore_site, driver))
            elif fault.kind == "metrics-outage":
                at(fault.at_s, partial(self._metrics_outage, True))
                at(end, partial(self._metrics_outage, False))
            else:
                for pool in self.pools:
                    if pool.role == "burst":
                        driver = self.drivers[pool.name]
                        at(fault.at_s, partial(setattr, driver, "api_down", True))
                        at(end, partial(setattr, driver, "api_down", False))
        return timeline

    def _set_capacity(self, driver: SimulatedPool, available: bool) -> None:
        driver.set_capacity_available(available, self.now)

    def _restore_site(self, driver: SimulatedPool) -> None:
        driver.restore_site(self.now)

    def _metrics_outage(self, down: bool) -> None:
        self.metrics_down_since = self.now if down else None

    def _price_timeline(self) -> dict[int, list[tuple[str, float]]]:
        steps: dict[int, list[tuple[str, float]]] = {}
        for pool in self.pools:
            series = self.worlds[pool.name].prices
            if series is None:
                series = (
                    builtin_spot_prices(pool, self.settings.seed)
                    if pool.capacity_type == "spot"
                    else ()
                )
            for point in series:
                steps.setdefault(int(point.at_s), []).append(
                    (pool.name, point.usd_per_replica_hour)
                )
        return steps

    def _aggregate(self, second: int, demand: float, failed: float, p99: float) -> None:
        minute = self._minute
        minute[0] += demand
        minute[1] += failed
        minute[2] = max(minute[2], p99)
        minute[3] += self.cost_rate()
        offset = 4
        for name, driver in self.drivers.items():
            minute[offset] += driver.counts["ready"] * self.capacity[name]
            minute[offset + 1] += driver.running
            offset += 2
        if (second + 1) % 60 == 0:
            series = self.series
            series.demand.append(minute[0] / 60)
            series.failed.append(minute[1] / 60)
            series.p99_ms.append(
                minute[2] if math.isfinite(minute[2]) else 10 * self.config.slo.p99_latency_ms
            )
            series.cost_usd_per_hour.append(minute[3] / 60)
            offset = 4
            for name in self.drivers:
                series.capacity[name].append(minute[offset] / 60)
                series.running[name].append(minute[offset + 1] / 60)
                offset += 2
            self._minute = [0.0] * len(minute)


class SimObserver:
    """What the real Observer would report of the world: demand and per-pool rates as
    differences of the gateway's counters, queue time from the queueing model, and
    a metrics outage as values that go stale after `stale_after_seconds`."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._last: tuple[float, float, dict[str, tuple[float, float]]] | None = None
        self._listing: dict[str, tuple[int, tuple[ReplicaObservation, ...]]] = {}
        self._held: Snapshot | None = None

    def prime(self, demand_rps: float, seconds: float) -> None:
        """A reading `seconds` before now that makes the first rate `demand_rps`."""
        world = self.world
        self._last = (
            world.now - seconds,
            world.arrived_total - demand_rps * seconds,
            {name: (c[0], c[1]) for name, c in world.counters.items()},
        )

    def observe(self) -> Snapshot:
        world = self.world
        now = world.now
        counters = {name: (c[0], c[1]) for name, c in world.counters.items()}
        last = self._last
        self._last = (now, world.arrived_total, counters)
        outage_for = None if world.metrics_down_since is None else now - world.metrics_down_since
        stale_after = world.config.policy.stale_after_seconds
        if last is None or now <= last[0]:
            demand: float | None = None
            rates: dict[str, tuple[float | None, float | None]] = {
                name: (None, None) for name in counters
            }
        else:
            elapsed = now - last[0]
            demand = (world.arrived_total - last[1]) / elapsed
            rates = {
                name: (
                    (value[0] - last[2][name][0]) / elapsed,
                    (value[1] - last[2][name][1]) / elapsed,
                )
                for name, value in counters.items()
            }
        pools = []
        for pool in world.pools:
            name = pool.name
            driver = world.drivers[name]
            latency = world.latency.get(name)
            queue = (
                None
                if latency is None or not math.isfinite(latency.mean_wait_ms)
                else latency.mean_wait_ms
            )
            if queue is None and latency is not None and latency.served_rps > 0:
                queue = 1000.0 * world.config.slo.queue_time_ms  # saturated: the queue only grows
            served, failed = rates[name]
            age = None
            if driver.counts["ready"]:
                age = outage_for if outage_for is not None else 0.0
            pools.append(
                PoolObservation(
                    name,
                    self._replicas(name, driver),
                    served_rps=served,
                    failed_rps=failed,
                    queue_time_ms=queue if outage_for is None else None,
                    queue_time_p99_ms=queue if outage_for is None else None,
                    service_rate_rps=world.capacity[name] if served else None,
                    metrics_age_s=age,
                )
            )
        snapshot = Snapshot(
            at=now, demand_rps=demand, pools=tuple(pools), weights=dict(world.gateway.weights)
        )
        if outage_for is not None:
            # The gateway's stats are unreadable too: the last values are reused while
            # young enough, then demand is unknown (None), as the real observer does.
            held = self._held
            stale = outage_for >= stale_after or held is None
            snapshot = Snapshot(
                at=now,
                demand_rps=None if stale or held is None else held.demand_rps,
                pools=snapshot.pools,
                weights=snapshot.weights,
            )
        else:
            self._held = snapshot
        return snapshot

    def gateway_counters(self) -> dict[str, tuple[int | None, int | None]]:
        if self.world.metrics_down_since is not None:
            return {}
        return {name: (int(c[0]), int(c[1])) for name, c in self.world.counters.items()}

    def _replicas(self, name: str, driver: SimulatedPool) -> tuple[ReplicaObservation, ...]:
        cached = self._listing.get(name)
        if cached is not None and cached[0] == driver.version:
            return cached[1]
        listing = tuple(
            ReplicaObservation(replica, phase, started_at)  # type: ignore[arg-type]
            for replica, phase, started_at in driver.phases()
        )
        self._listing[name] = (driver.version, listing)
        return listing


SPOT_PRICE_DAYS = 31


def builtin_spot_prices(pool: PoolConfig, seed: int) -> tuple[PricePoint, ...]:
    """An hourly random walk around the configured spot price, kept within 0.7-1.3x:
    spot prices move slowly, in small steps, since AWS smoothed them in 2017."""
    rng = random.Random(f"{seed}-prices-{pool.name}")
    base = pool.price.hourly_usd
    factor = 1.0
    points = []
    for hour in range(24 * SPOT_PRICE_DAYS):
        factor = min(1.3, max(0.7, factor + rng.gauss(0.0, 0.02)))
        points.append(PricePoint(at_s=hour * 3600.0, usd_per_replica_hour=round(base * factor, 4)))
    return tuple(points)


def _poisson(rng: random.Random, expected: float) -> int:
    """Knuth's method: fine for the small means of per-second interruptions."""
    threshold = math.exp(-expected)
    count, product = 0, rng.random()
    while product > threshold:
        count += 1
        product *= rng.random()
    return count
