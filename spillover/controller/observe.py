"""Observe: the pools, their Triton replicas and the gateway, as one Snapshot per tick.

Three sources, each read once per tick: the pool drivers (which replicas exist and
whether they run), the gateway (one ``show stat``: demand at its frontends, per-pool
responses and errors, readiness and weights of its servers) and every running
replica's Triton ``/metrics`` (queue time and busy time), scraped in parallel
(`scraping`).

Counters become rates over the real interval between two successful reads, each
stamped (monotonic) when it was taken: listing replicas takes a varying share of the
tick, so the tick's start says little about when the counters were read (`rates`).
A value that cannot be read fresh is reused while it is younger than
``policy.stale_after_seconds`` and is None after that, never 0: zero load and
unknown load call for opposite decisions. How long a pool's Triton metrics have been
unreadable is reported too (``metrics_age_s``), so the policy can tell a metrics
outage from a quiet pool.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from spillover.config import SpilloverConfig
from spillover.controller import rates, scraping, triton_metrics
from spillover.controller.snapshot import PoolObservation, Snapshot
from spillover.drivers.haproxy_runtime import GatewayStats, RuntimeApiError
from spillover.drivers.haproxy_spec import HTTP_BACKEND
from spillover.drivers.pools import PoolDriver, ReplicaTarget
from spillover.errors import SpilloverError, TemporaryError
from spillover.settings import DEFAULTS, ObserveSettings

logger = logging.getLogger(__name__)


class GatewayStatsSource(Protocol):
    """What the observer needs of the gateway: ``RuntimeApi`` is one."""

    def stats(self) -> GatewayStats: ...


@dataclass(frozen=True)
class _Scrape:
    """The last successful scrape of one replica incarnation."""

    started_at: float
    counters: triton_metrics.TritonCounters
    at: float
    """Wall time of the tick that read it: the age of a pool's metrics."""
    read_at: float
    """Monotonic time of the read itself: the end of a rate's interval."""


class Observer:
    """Reads drivers, gateway and Triton once per ``observe()`` and keeps what rates need."""

    def __init__(
        self,
        config: SpilloverConfig,
        drivers: Sequence[PoolDriver],
        gateway: GatewayStatsSource,
        clock: Callable[[], float] = time.time,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        model_instances: Mapping[str, int] | None = None,
        fetch: scraping.MetricsFetcher = scraping.fetch_metrics,
        settings: ObserveSettings = DEFAULTS.observe,
        burst_spend: Callable[[], float] | None = None,
    ) -> None:
        """model_instances: Triton model instances per replica, by pool (default 1): a
        replica's service rate is one instance's rate times this.
        burst_spend: the ledger's burst spend this month, if the caller has one.
        clock stamps the snapshot and ages values; monotonic times the reads that rates
        are taken between."""
        self.config = config
        self.drivers = tuple(drivers)
        self.gateway = gateway
        self.clock = clock
        self.monotonic = monotonic
        self.model_instances = dict(model_instances or {})
        self.fetch = fetch
        self.settings = settings
        self.burst_spend = burst_spend
        self._recent = rates.Recent(config.policy.stale_after_seconds)
        self._gateway_readings: tuple[rates.GatewayReading | None, rates.GatewayReading | None]
        self._gateway_readings = (None, None)
        self._gateway_fresh = False
        self._scrapes: dict[str, _Scrape] = {}
        self._listed_since: dict[tuple[str, float], float] = {}
        """When each replica incarnation (name, started_at) was first listed: the age of
        its metrics until a scrape of it succeeds."""

    def observe(self) -> Snapshot:
        now = self.clock()
        replicas = self._replicas(now)
        self._note_listed(replicas, now)
        previous, current = self._read_gateway()
        self._gateway_fresh = current is not None
        intervals = self._scrape(replicas, now)
        server_ready = self._recent.get(
            "server-ready", current.server_ready if current else None, now
        )
        pool_ready = self._recent.get("pool-ready", current.pool_ready if current else None, now)
        pools = tuple(
            self._pool(
                name,
                [replica for replica in replicas if replica.pool == name],
                intervals,
                rates.gateway_rates(previous, current, name),
                (server_ready or {}, pool_ready or {}),
                now,
            )
            for name in self._pool_names
        )
        fresh_weights = (
            rates.percentages(
                {pool: current.pool_weights.get(pool, 0) for pool in self._pool_names}
            )
            if current
            else None
        )
        return Snapshot(
            at=now,
            demand_rps=self._recent.get("demand", rates.demand(previous, current), now),
            pools=pools,
            weights=self._recent.get("weights", fresh_weights, now) or {},
            burst_spend_this_month_usd=self.burst_spend() if self.burst_spend else 0.0,
        )

    def gateway_counters(self) -> dict[str, tuple[int, int]]:
        """Per pool, cumulative (requests, errors) at the gateway as read by the last
        ``observe()``; empty when that read failed (unknown, not zero).

        Requests are the responses the pool's server slots gave on every backend (or
        HAProxy gave on their behalf), errors the 5xx among them. HAProxy keeps these
        counters only while it runs: they begin again at 0 when the gateway restarts,
        so whoever takes differences treats a decrease as a restart.
        """
        reading = self._gateway_readings[1] if self._gateway_fresh else None
        if reading is None:
            return {}
        return {name: reading.pool_totals.get(name, (0, 0)) for name in self._pool_names}

    @property
    def _pool_names(self) -> list[str]:
        return [pool.name for pool in self.config.pools]

    # --- sources ------------------------------------------------------------------------

    def _note_listed(self, replicas: list[ReplicaTarget], now: float) -> None:
        listed = {(replica.name, replica.started_at) for replica in replicas}
        self._listed_since = {
            key: since for key, since in self._listed_since.items() if key in listed
        }
        for key in listed:
            self._listed_since.setdefault(key, now)

    def _last_metrics(self, replica: ReplicaTarget) -> float:
        """When this incarnation's /metrics last answered, else when it was first listed."""
        scrape = self._scrapes.get(replica.name)
        if scrape is not None and scrape.started_at == replica.started_at:
            return scrape.at
        return self._listed_since[(replica.name, replica.started_at)]

    def _replicas(self, now: float) -> list[ReplicaTarget]:
        replicas: list[ReplicaTarget] = []
        for index, driver in enumerate(self.drivers):
            try:
                fresh: list[ReplicaTarget] | None = driver.replicas()
            except SpilloverError:
                logger.warning("pool driver %s cannot list replicas", driver, exc_info=True)
                fresh = None
            listed = self._recent.get(("replicas", index), fresh, now)
            if listed is None:
                raise TemporaryError(
                    f"pool driver {driver} has listed no replicas for "
                    f"{self.config.policy.stale_after_seconds:g} s; see the warnings above"
                )
            replicas += listed
        return [replica for replica in replicas if replica.pool in self._pool_names]

    def _read_gateway(self) -> tuple[rates.GatewayReading | None, rates.GatewayReading | None]:
        """(previous successful read, this tick's read or None)."""
        before = self.monotonic()
        try:
            stats = self.gateway.stats()
        except RuntimeApiError as error:
            logger.warning("gateway stats unavailable: %s", error)
            return self._gateway_readings[1], None
        reading = _gateway_reading(stats, (before + self.monotonic()) / 2)
        self._gateway_readings = (self._gateway_readings[1], reading)
        return self._gateway_readings

    def _scrape(
        self, replicas: list[ReplicaTarget], now: float
    ) -> dict[str, triton_metrics.ReplicaInterval]:
        """Intervals of replicas scraped now and at an earlier tick, same incarnation."""
        running = [replica for replica in replicas if replica.alive]
        answers = scraping.scrape_all(running, self.fetch, self.settings, self.monotonic)
        intervals = {}
        for replica in running:
            answer = answers.get(replica.name)
            counters = scraping.parse(replica, answer)
            if answer is None or counters is None:
                continue  # keep the last good scrape: the next one spans the gap
            previous = self._scrapes.get(replica.name)
            self._scrapes[replica.name] = _Scrape(replica.started_at, counters, now, answer.read_at)
            if previous is None or previous.started_at != replica.started_at:
                continue  # a new (or restarted) replica: this scrape is its first
            measured = triton_metrics.interval(
                previous.counters, counters, answer.read_at - previous.read_at
            )
            if measured is not None:
                intervals[replica.name] = measured
        listed = {replica.name for replica in replicas}
        self._scrapes = {n: s for n, s in self._scrapes.items() if n in listed}
        return intervals

    # --- one pool -----------------------------------------------------------------------

    def _pool(
        self,
        name: str,
        replicas: list[ReplicaTarget],
        intervals: Mapping[str, triton_metrics.ReplicaInterval],
        gateway: tuple[float, float] | None,
        gateway_ready: tuple[Mapping[str, bool], Mapping[str, bool]],
        now: float,
    ) -> PoolObservation:
        """gateway_ready: readiness by server and by pool, as the gateway last said."""
        measured = [intervals[r.name] for r in replicas if r.name in intervals]
        triton = (
            triton_metrics.pool_traffic(measured, self.model_instances.get(name, 1))
            if measured
            else None
        )
        queue: float | None
        p99: float | None
        if replicas:
            served, failed = _served_and_failed(gateway, triton)
            queue, p99 = (
                (triton.queue_time_ms, triton.queue_time_p99_ms) if triton else (None, None)
            )
        else:  # no replicas, no traffic, nobody queues: a pool standing by
            served, failed = gateway or (0.0, 0.0)
            queue, p99 = 0.0, 0.0

        def recent(field: str, fresh: float | None) -> float | None:
            return self._recent.get((name, field), fresh, now)

        observed = tuple(rates.replica_observation(r, *gateway_ready) for r in replicas)
        ready = [r for r, o in zip(replicas, observed, strict=True) if o.phase == "ready"]
        billed = sum(1 for o in observed if o.phase != "failed")
        # Replicas billed but not measured (starting, draining) served nothing: idle.
        busy = triton.busy_share * len(measured) / billed if triton and billed else None
        return PoolObservation(
            name=name,
            replicas=observed,
            served_rps=recent("served", served),
            failed_rps=recent("failed", failed),
            queue_time_ms=recent("queue", queue),
            queue_time_p99_ms=recent("queue_p99", p99),
            service_rate_rps=recent("service_rate", triton.service_rate_rps if triton else None),
            metrics_age_s=now - max(map(self._last_metrics, ready)) if ready else None,
            busy_share=None if busy is None else min(busy, 1.0),
        )


def _served_and_failed(
    gateway: tuple[float, float] | None, triton: triton_metrics.PoolTraffic | None
) -> tuple[float | None, float | None]:
    """The gateway's count of what it sent the pool when it has one, else Triton's.

    A failed request shows at the gateway (5xx), in Triton's failure counter, or in
    both (a Triton error reaches the client as an HTTP error): the larger of the two
    never counts a request twice.
    """
    if gateway is None:
        return (triton.served_rps, triton.failed_rps) if triton else (None, None)
    served, failed = gateway
    return served, max(failed, triton.failed_rps) if triton else failed


def _gateway_reading(stats: GatewayStats, read_at: float) -> rates.GatewayReading:
    """What the rates and phases need of one ``show stat``, digested once per read."""
    server_ready: dict[str, bool] = {}
    pool_ready: dict[str, bool] = {}
    pool_weights: dict[str, int] = {}
    for row in stats.servers:
        server_ready[row.server] = server_ready.get(row.server, True) and row.ready
        pool_ready[row.pool] = pool_ready.get(row.pool, False) or row.ready
        if row.backend == HTTP_BACKEND and row.ready:
            pool_weights[row.pool] = pool_weights.get(row.pool, 0) + row.weight
    return rates.GatewayReading(
        read_at=read_at,
        requests_total=stats.requests_total,
        pool_totals=stats.pool_totals(),
        server_ready=server_ready,
        pool_ready=pool_ready,
        pool_weights=pool_weights,
    )
