"""The controller's Prometheus `/metrics`: what it sees, decides and spends.

Values are the last tick's, gathered at scrape time by one collector, so a pool
that disappears from the config disappears from the metrics too. Spend comes
straight from the ledger, so the counter survives controller restarts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from spillover.config import SpilloverConfig
from spillover.controller.decisions import Mode
from spillover.controller.policy import PolicyState
from spillover.controller.snapshot import Snapshot
from spillover.errors import PermanentError


@dataclass
class _LastTick:
    snapshot: Snapshot
    state: PolicyState
    duration_s: float


class Exporter(Collector):
    def __init__(
        self,
        config: SpilloverConfig,
        spend_by_pool: Callable[[], Mapping[str, float]],
    ) -> None:
        self.config = config
        self.spend_by_pool = spend_by_pool
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self._lock = threading.Lock()
        self._last: _LastTick | None = None
        self._ticks = 0
        self._failures = 0
        self._server: WSGIServer | None = None

    def update(
        self,
        snapshot: Snapshot,
        state: PolicyState,
        failures: Sequence[object],
        duration_s: float,
    ) -> None:
        with self._lock:
            self._last = _LastTick(snapshot, state, duration_s)
            self._ticks += 1
            self._failures += len(failures)

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
            last, ticks, failures = self._last, self._ticks, self._failures
        yield CounterMetricFamily(
            "spillover_ticks", "Controller ticks since it started.", value=ticks
        )
        yield CounterMetricFamily(
            "spillover_actuation_failures",
            "Decisions an actuator could not apply (each retried next tick).",
            value=failures,
        )
        spend = CounterMetricFamily(
            "spillover_spend_usd", "Spend recorded in the ledger, per pool.", labels=["pool"]
        )
        for pool, usd in sorted(self.spend_by_pool().items()):
            spend.add_metric([pool], usd)
        yield spend
        if last is not None:
            yield from self._tick_metrics(last)

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
            price.add_metric([pool.name], observed.running * pool.price.hourly_usd)
        yield from (replicas, weight, served, queue, price)
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
            "spillover_tick_duration_seconds", "How long the last tick took.", value=last.duration_s
        )
