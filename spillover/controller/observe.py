"""Observe: the pools, their Triton replicas and the gateway, as one Snapshot per tick.

Three sources, each read once per tick: the pool drivers (which replicas exist and
whether they run), the gateway (one ``show stat``: demand at its frontends, per-pool
responses and errors, readiness and weights of its servers) and every running
replica's Triton ``/metrics`` (queue time and busy time), scraped in parallel.

Counters become rates over the real interval between two successful reads. A value
that cannot be read fresh is reused while it is younger than
``policy.stale_after_seconds`` and is None after that, never 0: zero load and
unknown load call for opposite decisions. How long a pool's Triton metrics have been
unreadable is reported too (``metrics_age_s``), so the policy can tell a metrics
outage from a quiet pool.
"""

from __future__ import annotations

import logging
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from spillover.config import SpilloverConfig
from spillover.controller import triton_metrics
from spillover.controller.snapshot import (
    PoolObservation,
    ReplicaObservation,
    ReplicaPhase,
    Snapshot,
)
from spillover.drivers.haproxy_runtime import GatewayStats, RuntimeApiError
from spillover.drivers.haproxy_spec import HTTP_BACKEND, pool_of_server
from spillover.drivers.pools import PoolDriver, ReplicaTarget
from spillover.errors import SpilloverError, TemporaryError

logger = logging.getLogger(__name__)

SCRAPE_TIMEOUT_SECONDS = 1.0
"""A replica whose /metrics takes longer is treated as unreadable this tick."""

T = TypeVar("T")


class GatewayStatsSource(Protocol):
    """What the observer needs of the gateway: ``RuntimeApi`` is one."""

    def stats(self) -> GatewayStats: ...


MetricsFetcher = Callable[[str, float], str]
"""(metrics_url, timeout_seconds) -> the Prometheus text it answers."""


def fetch_metrics(url: str, timeout_s: float) -> str:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return str(response.read().decode())


@dataclass(frozen=True)
class _GatewayReading:
    stats: GatewayStats
    at: float
    pool_totals: dict[str, tuple[int, int]]
    """Per pool (responses, 5xx), summed once per read rather than once per pool."""


@dataclass(frozen=True)
class _Scrape:
    """The last successful scrape of one replica incarnation."""

    started_at: float
    counters: triton_metrics.TritonCounters
    at: float


class _Recent:
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


class Observer:
    """Reads drivers, gateway and Triton once per ``observe()`` and keeps what rates need."""

    def __init__(
        self,
        config: SpilloverConfig,
        drivers: Sequence[PoolDriver],
        gateway: GatewayStatsSource,
        clock: Callable[[], float] = time.time,
        *,
        model_instances: Mapping[str, int] | None = None,
        fetch: MetricsFetcher = fetch_metrics,
        scrape_timeout_s: float = SCRAPE_TIMEOUT_SECONDS,
        burst_spend: Callable[[], float] | None = None,
    ) -> None:
        """model_instances: Triton model instances per replica, by pool (default 1): a
        replica's service rate is one instance's rate times this.
        burst_spend: the ledger's burst spend this month, if the caller has one."""
        self.config = config
        self.drivers = tuple(drivers)
        self.gateway = gateway
        self.clock = clock
        self.model_instances = dict(model_instances or {})
        self.fetch = fetch
        self.scrape_timeout_s = scrape_timeout_s
        self.burst_spend = burst_spend
        self._recent = _Recent(config.policy.stale_after_seconds)
        self._gateway_readings: tuple[_GatewayReading | None, _GatewayReading | None] = (None, None)
        self._gateway_fresh = False
        self._scrapes: dict[str, _Scrape] = {}
        self._listed_since: dict[tuple[str, float], float] = {}
        """When each replica incarnation (name, started_at) was first listed: the age of
        its metrics until a scrape of it succeeds."""

    def observe(self) -> Snapshot:
        now = self.clock()
        replicas = self._replicas(now)
        self._note_listed(replicas, now)
        previous, current = self._read_gateway(now)
        self._gateway_fresh = current is not None
        intervals = self._scrape(replicas, now)
        gateway_ready = self._recent.get(
            "gateway-ready", _server_readiness(current) if current else None, now
        )
        pools = tuple(
            self._pool(
                name,
                [replica for replica in replicas if replica.pool == name],
                intervals,
                _gateway_rates(previous, current, name),
                gateway_ready or {},
                now,
            )
            for name in self._pool_names
        )
        fresh_weights = _weights(current.stats, self._pool_names) if current else None
        return Snapshot(
            at=now,
            demand_rps=self._recent.get("demand", _demand(previous, current), now),
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

    def _read_gateway(self, now: float) -> tuple[_GatewayReading | None, _GatewayReading | None]:
        """(previous successful read, this tick's read or None)."""
        try:
            stats = self.gateway.stats()
        except RuntimeApiError as error:
            logger.warning("gateway stats unavailable: %s", error)
            return self._gateway_readings[1], None
        reading = _GatewayReading(stats, now, stats.pool_totals())
        self._gateway_readings = (self._gateway_readings[1], reading)
        return self._gateway_readings

    def _scrape(
        self, replicas: list[ReplicaTarget], now: float
    ) -> dict[str, triton_metrics.ReplicaInterval]:
        """Intervals of replicas scraped now and at an earlier tick, same incarnation."""
        running = [replica for replica in replicas if replica.alive]
        texts = self._fetch_all(running)
        intervals = {}
        for replica in running:
            counters = _parse(replica, texts.get(replica.name))
            if counters is None:
                continue  # keep the last good scrape: the next one spans the gap
            previous = self._scrapes.get(replica.name)
            self._scrapes[replica.name] = _Scrape(replica.started_at, counters, now)
            if previous is None or previous.started_at != replica.started_at:
                continue  # a new (or restarted) replica: this scrape is its first
            measured = triton_metrics.interval(previous.counters, counters, now - previous.at)
            if measured is not None:
                intervals[replica.name] = measured
        listed = {replica.name for replica in replicas}
        self._scrapes = {n: s for n, s in self._scrapes.items() if n in listed}
        return intervals

    def _fetch_all(self, replicas: list[ReplicaTarget]) -> dict[str, str | BaseException]:
        replicas = [r for r in replicas if r.metrics_url]  # a pod with no IP yet has none
        if not replicas:
            return {}
        executor = ThreadPoolExecutor(max_workers=min(16, len(replicas)))
        try:
            futures: dict[str, Future[str]] = {
                r.name: executor.submit(self.fetch, r.metrics_url, self.scrape_timeout_s)
                for r in replicas
            }
            wait(futures.values(), timeout=self.scrape_timeout_s + 0.5)
        finally:
            executor.shutdown(wait=False, cancel_futures=True)
        return {name: _outcome(future) for name, future in futures.items()}

    # --- one pool -----------------------------------------------------------------------

    def _pool(
        self,
        name: str,
        replicas: list[ReplicaTarget],
        intervals: Mapping[str, triton_metrics.ReplicaInterval],
        gateway: tuple[float, float] | None,
        gateway_ready: Mapping[str, bool],
        now: float,
    ) -> PoolObservation:
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

        observed = tuple(_replica(r, gateway_ready, name) for r in replicas)
        ready = [r for r, o in zip(replicas, observed, strict=True) if o.phase == "ready"]
        return PoolObservation(
            name=name,
            replicas=observed,
            served_rps=recent("served", served),
            failed_rps=recent("failed", failed),
            queue_time_ms=recent("queue", queue),
            queue_time_p99_ms=recent("queue_p99", p99),
            service_rate_rps=recent("service_rate", triton.service_rate_rps if triton else None),
            metrics_age_s=now - max(map(self._last_metrics, ready)) if ready else None,
        )


def _replica(
    replica: ReplicaTarget, gateway_ready: Mapping[str, bool], pool: str
) -> ReplicaObservation:
    """Ready once the driver and the gateway both say so: its own gateway server when
    it has one, else some ready server of its pool. A live replica with notice it will
    be stopped is draining, whatever its readiness."""
    phase: ReplicaPhase = "starting"
    if not replica.alive:
        phase = "failed"
    elif replica.draining:
        phase = "draining"
    elif replica.ready:
        if replica.gateway_server is not None:
            in_rotation = gateway_ready.get(replica.gateway_server, False)
        else:
            in_rotation = any(
                ready for server, ready in gateway_ready.items() if _pool_of(server) == pool
            )
        if in_rotation:
            phase = "ready"
    return ReplicaObservation(replica.name, phase, replica.started_at)


def _pool_of(server: str) -> str | None:
    try:
        return pool_of_server(server)
    except ValueError:
        return None


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


# --- gateway arithmetic -----------------------------------------------------------------


def _demand(previous: _GatewayReading | None, current: _GatewayReading | None) -> float | None:
    """Requests per second arriving at the traffic frontends, served or not."""
    if previous is None or current is None or current.at <= previous.at:
        return None
    arrived = current.stats.requests_total - previous.stats.requests_total
    if arrived < 0:  # the gateway restarted: its counters began again at 0
        return None
    return arrived / (current.at - previous.at)


def _gateway_rates(
    previous: _GatewayReading | None, current: _GatewayReading | None, pool: str
) -> tuple[float, float] | None:
    """(responses/s, 5xx/s) the pool's servers gave over the interval; None if unknown."""
    if previous is None or current is None or current.at <= previous.at:
        return None
    before = previous.pool_totals.get(pool, (0, 0))
    after = current.pool_totals.get(pool, (0, 0))
    responses, errors = after[0] - before[0], after[1] - before[1]
    if responses < 0 or errors < 0:
        return None
    seconds = current.at - previous.at
    return responses / seconds, errors / seconds


def _server_readiness(reading: _GatewayReading) -> dict[str, bool]:
    """Per server: ready on every backend that lists it."""
    readiness: dict[str, bool] = {}
    for row in reading.stats.servers:
        readiness[row.server] = readiness.get(row.server, True) and row.ready
    return readiness


def _weights(stats: GatewayStats, pools: list[str]) -> dict[str, int]:
    """Each pool's percent of the weight of ready servers; all 0 when none takes traffic."""
    by_pool = dict.fromkeys(pools, 0)
    for row in stats.servers:
        if row.backend == HTTP_BACKEND and row.ready and row.pool in by_pool:
            by_pool[row.pool] += row.weight
    return _percentages(by_pool)


def _percentages(weights: dict[str, int]) -> dict[str, int]:
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


# --- Triton scrapes ---------------------------------------------------------------------


def _outcome(future: Future[str]) -> str | BaseException:
    if not future.done():
        return TimeoutError("no answer in time")
    error = future.exception()
    return error if error is not None else future.result()


def _parse(
    replica: ReplicaTarget, answer: str | BaseException | None
) -> triton_metrics.TritonCounters | None:
    problem: object = answer
    if isinstance(answer, str):
        try:
            return triton_metrics.parse_counters(answer)
        except ValueError as error:
            problem = f"not Prometheus text ({error})"
    # A starting replica often has no metrics endpoint yet, nor one on its way out; a
    # ready one should.
    level = logging.WARNING if replica.ready and not replica.draining else logging.DEBUG
    logger.log(level, "no metrics from %s at %s: %s", replica.name, replica.metrics_url, problem)
    return None
