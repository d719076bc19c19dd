"""The controller's Prometheus `/metrics`: what it sees, decides and spends.

Values are the last tick's, gathered at scrape time by one collector, so a pool
that disappears from the config disappears from the metrics too. Spend comes
straight from the ledger, so the counter survives controller restarts.

Request counters are the observed rates integrated over the time between ticks,
so `rate()` over them gives back the rates, and a gateway restart (its own
counters starting again at 0) never makes them go backwards. Units are base
units: seconds, requests, US dollars.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from spillover.config import SpilloverConfig
from spillover.controller.decisions import Decision, Mode
from spillover.controller.policy import PolicyState
from spillover.controller.pool_prices import PoolPrice
from spillover.controller.snapshot import Snapshot
from spillover.errors import PermanentError

TICK_DURATION_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds: a healthy tick reads a few endpoints (tens of ms); one near the tick
interval (seconds) is too slow."""


@dataclass
class _LastTick:
    snapshot: Snapshot
    state: PolicyState
    duration_s: float
    prices: Mapping[str, PoolPrice]


class _Counts:
    """What the counters hold: ticks, requests per pool and outcome, tick durations."""

    def __init__(self) -> None:
        self.ticks = 0
        self.failures = 0
        self.decisions: dict[str, int] = {}
        self.arrived = 0.0
        self.requests: dict[tuple[str, str], float] = {}
        self.duration_buckets = [0] * len(TICK_DURATION_BUCKETS_S)
        self.duration_count = 0
        self.duration_sum_s = 0.0

    def add_tick(self, duration_s: float, failures: int, decisions: Sequence[Decision]) -> None:
        self.ticks += 1
        self.failures += failures
        for decision in decisions:
            kind = type(decision).__name__
            self.decisions[kind] = self.decisions.get(kind, 0) + 1
        self.duration_count += 1
        self.duration_sum_s += duration_s
        for index, bound in enumerate(TICK_DURATION_BUCKETS_S):
            if duration_s <= bound:
                self.duration_buckets[index] += 1

    def add_requests(self, previous: Snapshot, snapshot: Snapshot) -> None:
        """Add the requests of the interval between two snapshots: each rate was
        observed at the interval's end, so it stands for the interval. A rate the
        observer could not read (None) adds nothing rather than a guess."""
        elapsed_s = snapshot.at - previous.at
        if elapsed_s <= 0:
            return
        if snapshot.demand_rps is not None:
            self.arrived += snapshot.demand_rps * elapsed_s
        for pool in snapshot.pools:
            for outcome, rps in (("served", pool.served_rps), ("failed", pool.failed_rps)):
                key = (pool.name, outcome)
                self.requests[key] = self.requests.get(key, 0.0) + (rps or 0.0) * elapsed_s


class Exporter(Collector):
    def __init__(
        self,
        config: SpilloverConfig,
        spend: Callable[[], Mapping[tuple[str, str], float]] = dict,
        drift: Callable[[], Mapping[str, float]] | None = None,
    ) -> None:
        """spend: all-time dollars per (pool, category), from the ledger; drift: the
        ledger against the AWS bill per cost tag, when the controller compares them."""
        self.config = config
        self.spend = spend
        self.drift = drift
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self._lock = threading.Lock()
        self._last: _LastTick | None = None
        self._counts = _Counts()
        self._server: WSGIServer | None = None
        self._standing = (True, False)
        """(leader, paused): a controller without leader election leads alone."""

    def update(
        self,
        snapshot: Snapshot,
        state: PolicyState,
        failures: Sequence[object],
        duration_s: float,
        said: Sequence[Decision] = (),
        prices: Mapping[str, PoolPrice] | None = None,
    ) -> None:
        """Take a tick's results; `said` are the decisions that changed something;
        `prices` what each pool cost this tick (absent: its price book)."""
        with self._lock:
            if self._last is not None:
                self._counts.add_requests(self._last.snapshot, snapshot)
            self._counts.add_tick(duration_s, len(failures), said)
            self._last = _LastTick(snapshot, state, duration_s, dict(prices or {}))

    def set_standing(self, *, leader: bool, paused: bool) -> None:
        """Whether this process acts (holds the Lease) and whether actuation is paused."""
        with self._lock:
            self._standing = (leader, paused)

    def serve(self, host: str, port: int) -> int:
        """Serve /metrics in a background thread; returns the port (0 picks one)."""
        try:
            self._server, _ = start_http_server(port, addr=host, registry=self.registry)
        except OSError as error:
            raise PermanentError(
                f"controller.metrics_port {port} on {host}: {error.strerror} (another "
                "controller?); set controller.metrics_port to a free port, or 0 for any"
            ) from None
        return int(self._server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            last = self._last
            counters = list(self._counters(self._counts))
        yield from counters
        yield from self._standing_metrics()
        spend = CounterMetricFamily(
            "spillover_spend_usd",
            "Spend recorded in the ledger, per pool and cost category (compute, storage, "
            "network, labour, operations).",
            labels=["pool", "category"],
        )
        for (pool, category), usd in sorted(self.spend().items()):
            spend.add_metric([pool, category], usd)
        yield spend
        if self.drift is not None:
            drift = GaugeMetricFamily(
                "spillover_spend_drift_ratio",
                "(ledger - bill) / bill of burst spend per spillover:pool tag, over this "
                "month's settled days (Cost Explorer).",
                labels=["tag"],
            )
            for tag, ratio in sorted(self.drift().items()):
                drift.add_metric([tag], ratio)
            yield drift
        yield from self._config_metrics()
        if last is not None:
            yield from self._tick_metrics(last)

    def _counters(self, counts: _Counts) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "spillover_ticks", "Controller ticks since it started.", value=counts.ticks
        )
        yield CounterMetricFamily(
            "spillover_actuation_failures",
            "Decisions an actuator could not apply (each retried next tick).",
            value=counts.failures,
        )
        decisions = CounterMetricFamily(
            "spillover_decisions",
            "Decisions that changed something (a size, the shares, the mode, an alert), by kind.",
            labels=["kind"],
        )
        for kind, count in sorted(counts.decisions.items()):
            decisions.add_metric([kind], count)
        yield decisions
        yield CounterMetricFamily(
            "spillover_requests_arrived",
            "Requests that arrived at the gateway, all pools together.",
            value=counts.arrived,
        )
        requests = CounterMetricFamily(
            "spillover_requests",
            "Requests the gateway sent to a pool, by outcome (served or failed).",
            labels=["pool", "outcome"],
        )
        for (pool, outcome), total in sorted(counts.requests.items()):
            requests.add_metric([pool, outcome], total)
        yield requests
        cumulative = [
            (str(bound), float(count))
            for bound, count in zip(TICK_DURATION_BUCKETS_S, counts.duration_buckets, strict=True)
        ]
        yield HistogramMetricFamily(
            "spillover_tick_duration_seconds",
            "How long ticks take: observe, decide, act, record.",
            buckets=[*cumulative, ("+Inf", float(counts.duration_count))],
            sum_value=counts.duration_sum_s,
        )

    def _standing_metrics(self) -> Iterator[Metric]:
        with self._lock:
            leader, paused = self._standing
        yield GaugeMetricFamily(
            "spillover_leader",
            "1 when this controller holds the Lease and acts; 0 for a follower.",
            value=int(leader),
        )
        yield GaugeMetricFamily(
            "spillover_paused",
            "1 while spillover.io/paused on the status resource stops actuation.",
            value=int(paused),
        )

    def _config_metrics(self) -> Iterator[Metric]:
        """The targets dashboards and alerts compare against, from the config."""
        slo = self.config.slo
        yield GaugeMetricFamily(
            "spillover_slo_queue_time_seconds",
            "SLO: the queue time above which a pool counts as saturated.",
            value=slo.queue_time_ms / 1000,
        )
        yield GaugeMetricFamily(
            "spillover_slo_p99_latency_seconds",
            "SLO: end-to-end p99 latency.",
            value=slo.p99_latency_ms / 1000,
        )
        cold_start = GaugeMetricFamily(
            "spillover_pool_cold_start_seconds",
            "How long a new replica of a pool is expected to take to become ready.",
            labels=["pool"],
        )
        for pool in self.config.pools:
            cold_start.add_metric([pool.name], pool.cold_start_seconds)
        yield cold_start
        cap = self.config.budget.monthly_cap_usd
        if cap is not None:
            yield GaugeMetricFamily(
                "spillover_budget_monthly_cap_usd",
                "Ceiling on burst spend this calendar month (UTC).",
                value=cap,
            )
        hourly_cap = self.config.budget.max_burst_usd_per_hour
        if hourly_cap is not None:
            yield GaugeMetricFamily(
                "spillover_budget_hourly_cap_usd",
                "Ceiling on the hourly price of all burst replicas.",
                value=hourly_cap,
            )

    def _tick_metrics(self, last: _LastTick) -> Iterator[Metric]:
        snapshot, state = last.snapshot, last.state
        replicas = GaugeMetricFamily(
            "spillover_pool_replicas",
            "Replicas per pool: desired by the policy, ready, starting, draining "
            "(told it will be stopped: out of rotation, still billed).",
            labels=["pool", "state"],
        )
        weight = GaugeMetricFamily(
            "spillover_route_weight", "Share of traffic routed to a pool (0-1).", labels=["pool"]
        )
        served = GaugeMetricFamily(
            "spillover_pool_served_rps", "Requests per second served by a pool.", labels=["pool"]
        )
        queue = GaugeMetricFamily(
            "spillover_pool_queue_time_seconds",
            "Average time requests waited in Triton's queue.",
            labels=["pool"],
        )
        queue_p99 = GaugeMetricFamily(
            "spillover_pool_queue_time_p99_seconds",
            "The worst replica's average queue time: a p99-ish signal.",
            labels=["pool"],
        )
        oldest_starting = GaugeMetricFamily(
            "spillover_pool_oldest_starting_seconds",
            "Age of a pool's oldest replica still starting (0 when none is).",
            labels=["pool"],
        )
        capacity = GaugeMetricFamily(
            "spillover_pool_capacity_rps",
            "Requests per second a pool's ready replicas serve when fully busy (measured).",
            labels=["pool"],
        )
        price = GaugeMetricFamily(
            "spillover_pool_cost_usd_per_hour",
            "What a pool's running replicas cost per hour.",
            labels=["pool"],
        )
        for pool in self.config.pools:
            observed = snapshot.pool(pool.name)
            plan = state.pools.get(pool.name)
            if plan is not None:
                replicas.add_metric([pool.name, "desired"], plan.desired)
            replicas.add_metric([pool.name, "ready"], observed.ready)
            replicas.add_metric([pool.name, "starting"], observed.starting)
            replicas.add_metric([pool.name, "draining"], observed.draining)
            if pool.name in state.weights:
                weight.add_metric([pool.name], state.weights[pool.name] / 100)
            if observed.served_rps is not None:
                served.add_metric([pool.name], observed.served_rps)
            if observed.queue_time_ms is not None:
                queue.add_metric([pool.name], observed.queue_time_ms / 1000)
            if observed.queue_time_p99_ms is not None:
                queue_p99.add_metric([pool.name], observed.queue_time_p99_ms / 1000)
            starting = [r.started_at for r in observed.replicas if r.phase == "starting"]
            oldest_starting.add_metric(
                [pool.name], snapshot.at - min(starting) if starting else 0.0
            )
            if observed.service_rate_rps is not None:
                capacity.add_metric([pool.name], observed.ready * observed.service_rate_rps)
            known = last.prices.get(pool.name)
            hourly = known.usd_per_replica_hour if known else pool.price.hourly_usd
            price.add_metric([pool.name], observed.running * hourly)
        yield from (replicas, weight, served, queue, queue_p99, oldest_starting, capacity, price)
        yield from _price_metrics(last.prices)
        demand = GaugeMetricFamily(
            "spillover_demand_rps",
            "Requests per second: observed at the gateway, and planned for (forecast).",
            labels=["kind"],
        )
        if state.demand_rps is not None:
            demand.add_metric(["observed"], state.demand_rps)
        if state.planned_rps is not None:
            demand.add_metric(["planned"], state.planned_rps)
        yield demand
        mode = GaugeMetricFamily(
            "spillover_mode", "1 for the mode the controller is in.", labels=["mode"]
        )
        for candidate in Mode:
            mode.add_metric([candidate.value], 1.0 if candidate is state.mode else 0.0)
        yield mode
        yield GaugeMetricFamily(
            "spillover_budget_limited",
            "1 while the budget holds burst below what demand needs.",
            value=1.0 if state.budget_limited else 0.0,
        )
        yield GaugeMetricFamily(
            "spillover_burst_spend_month_usd",
            "Burst spend recorded since the start of this UTC month (what the cap counts).",
            value=snapshot.burst_spend_this_month_usd,
        )
        yield GaugeMetricFamily(
            "spillover_last_tick_timestamp_seconds",
            "When the last tick's snapshot was taken (Unix time).",
            value=snapshot.at,
        )


def _price_metrics(prices: Mapping[str, PoolPrice]) -> Iterator[Metric]:
    """Each pool's unit price, and for market pools how old and how trustworthy it is."""
    unit = GaugeMetricFamily(
        "spillover_pool_price_usd_per_replica_hour",
        "What one replica of a pool is charged per hour now.",
        labels=["pool", "origin"],
    )
    age = GaugeMetricFamily(
        "spillover_price_age_seconds",
        "Seconds since AWS last confirmed a market pool's price.",
        labels=["pool"],
    )
    fallback = GaugeMetricFamily(
        "spillover_price_fallback",
        "1 while a market pool is charged at a stale price or its price book (AWS not answering).",
        labels=["pool"],
    )
    for name, known in sorted(prices.items()):
        unit.add_metric([name, known.origin], known.usd_per_replica_hour)
        if known.age_s is not None:
            age.add_metric([name], known.age_s)
        if known.origin != "book" or known.note is not None:
            fallback.add_metric([name], 1.0 if known.fallback else 0.0)
    yield from (unit, age, fallback)
