"""The observer on a fake clock, with a scripted gateway, drivers and Triton pages.

What the policy would notice: rates over the real interval, phases, traffic shares,
and values that go stale (reused for a while, then None, never 0).
"""

from __future__ import annotations

import logging
import threading
import urllib.error
from dataclasses import dataclass, field

import pytest

from spillover.config import SpilloverConfig, parse_config
from spillover.controller.observe import Observer
from spillover.controller.snapshot import Snapshot
from spillover.drivers.haproxy_runtime import (
    FrontendStats,
    GatewayStats,
    GatewayUnreachableError,
    ServerStats,
)
from spillover.drivers.haproxy_spec import BACKENDS, GRPC_FRONTEND, HTTP_FRONTEND
from spillover.drivers.pools import ReplicaTarget
from spillover.errors import TemporaryError
from spillover.settings import ObserveSettings

STALE_AFTER_S = 10.0
START = 1_000_000.0


def config() -> SpilloverConfig:
    price = {"usd_per_replica_hour": 1.0, "source": "test"}
    return parse_config(
        {
            "pools": [
                {"name": "private", "role": "private", "capacity_type": "owned"}
                | {"max_replicas": 4, "price": price},
                {"name": "burst", "role": "burst", "capacity_type": "spot"}
                | {"max_replicas": 4, "price": price},
            ],
            "policy": {"stale_after_seconds": STALE_AFTER_S},
        }
    )


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@dataclass
class Server:
    responses: int = 0
    errors: int = 0
    weight: int = 1
    ready: bool = True


class FakeGateway:
    """Cumulative counters a test moves forward, as one `show stat` would show them."""

    def __init__(self) -> None:
        self.requests = {HTTP_FRONTEND: 0, GRPC_FRONTEND: 0}
        self.servers: dict[str, Server] = {}
        self.down = False

    def stats(self) -> GatewayStats:
        if self.down:
            raise GatewayUnreachableError("no gateway answers on test.sock")
        frontends = tuple(
            FrontendStats(name, total, 0, 0, {}) for name, total in self.requests.items()
        )
        # Each backend holds half of a server's counters, as HTTP and gRPC traffic would.
        servers = tuple(
            _server_row(backend, name, server, first)
            for name, server in self.servers.items()
            for backend, first in zip(BACKENDS, (True, False), strict=True)
        )
        return GatewayStats(frontends, servers)

    def serve(self, server: str, responses: int, errors: int = 0, protocol: str = "http") -> None:
        """`responses` requests arrive and `server` answers them, `errors` with a 5xx."""
        frontend = HTTP_FRONTEND if protocol == "http" else GRPC_FRONTEND
        self.requests[frontend] += responses
        self.servers[server].responses += responses
        self.servers[server].errors += errors


def _server_row(backend: str, name: str, server: Server, first: bool) -> ServerStats:
    """The first backend's half, or the rest: the two always add up to the server's."""

    def half(count: int) -> int:
        return count // 2 if first else count - count // 2

    errors = half(server.errors)
    responses = half(server.responses)
    ok = responses - errors
    return ServerStats(
        backend=backend,
        server=name,
        pool=name.rsplit("-", 1)[0],
        status="UP" if server.ready else "DOWN",
        raw_status="UP" if server.ready else "DOWN",
        weight=server.weight,
        current_sessions=0,
        total_sessions=responses,
        responses_by_class={"1xx": 0, "2xx": ok, "3xx": 0, "4xx": 0, "5xx": errors, "other": 0},
        check_status="L7OK",
        seconds_since_change=0,
        retries=0,
        redispatches=0,
    )


@dataclass
class TritonPage:
    """One replica's cumulative counters, rendered as Triton's /metrics text."""

    success: int = 0
    failure: int = 0
    executions: int = 0
    queue_us: int = 0
    compute_us: int = 0
    queue_p99_us: float | None = None

    def text(self) -> str:
        labels = 'model="recommender",version="1"'
        counters = {
            "nv_inference_request_success": self.success,
            "nv_inference_count": self.success,
            "nv_inference_exec_count": self.executions,
            "nv_inference_queue_duration_us": self.queue_us,
            "nv_inference_compute_infer_duration_us": self.compute_us,
        }
        lines = []
        for name, value in counters.items():
            lines += [f"# TYPE {name} counter", f"{name}{{{labels}}} {value}"]
        lines += [
            "# TYPE nv_inference_request_failure counter",
            f'nv_inference_request_failure{{model="recommender",reason="BACKEND",version="1"}} '
            f"{self.failure}",
        ]
        if self.queue_p99_us is not None:
            lines += [
                "# TYPE nv_inference_queue_summary_us summary",
                f'nv_inference_queue_summary_us{{{labels},quantile="0.99"}} {self.queue_p99_us}',
            ]
        return "\n".join(lines) + "\n"


@dataclass
class Rig:
    """A fake world (it is also the pool driver) and an observer of it; `tick` moves the
    clock and observes."""

    clock: Clock = field(default_factory=Clock)
    gateway: FakeGateway = field(default_factory=FakeGateway)
    targets: dict[str, ReplicaTarget] = field(default_factory=dict)
    pages: dict[str, TritonPage] = field(default_factory=dict)
    unreadable: set[str] = field(default_factory=set)
    driver_error: Exception | None = None
    instances: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.observer = Observer(
            config(),
            [self],
            self.gateway,
            self.clock,
            monotonic=self.clock,
            fetch=self.fetch,
            model_instances=self.instances,
        )

    # the pool driver
    def replicas(self) -> list[ReplicaTarget]:
        if self.driver_error is not None:
            raise self.driver_error
        return list(self.targets.values())

    def scale(self, pool: str, replicas: int) -> None:
        raise AssertionError("the observer never scales")

    # the metrics endpoints
    def fetch(self, url: str, timeout_s: float) -> str:
        name = url.split("/")[2]
        if name in self.unreadable:
            raise urllib.error.URLError("connection refused")
        return self.pages[name].text()

    def add(
        self,
        name: str,
        *,
        alive: bool = True,
        ready: bool = True,
        started_at: float = 1.0,
        draining: bool = False,
    ):
        self.targets[name] = ReplicaTarget(
            name,
            name.rsplit("-", 1)[0],
            alive,
            ready,
            started_at,
            f"http://{name}/metrics",
            draining=draining,
            gateway_server=name,
        )
        self.pages[name] = TritonPage()
        self.gateway.servers[name] = Server()

    def serve(
        self, name: str, requests: int, queue_ms: float = 1.0, compute_ms: float = 2.0, **kw: int
    ) -> None:
        """`requests` pass through the gateway to replica `name`, one per execution."""
        self.gateway.serve(name, requests, kw.get("errors", 0))
        page = self.pages[name]
        page.success += requests
        page.executions += requests
        page.queue_us += round(requests * queue_ms * 1000)
        page.compute_us += round(requests * compute_ms * 1000)
        page.failure += kw.get("failures", 0)

    def tick(self, seconds: float = 2.0) -> Snapshot:
        self.clock.now += seconds
        return self.observe()

    def observe(self) -> Snapshot:
        return self.observer.observe()


def rig(*names: str, instances: dict[str, int] | None = None) -> Rig:
    made = Rig(instances=instances or {})
    for name in names:
        made.add(name)
    return made


# --- rates --------------------------------------------------------------------------------


def test_first_observation_has_no_rates_but_knows_replicas_and_weights() -> None:
    world = rig("private-0")
    first = world.observe()
    assert first.demand_rps is None
    private = first.pool("private")
    assert (private.served_rps, private.queue_time_ms, private.service_rate_rps) == (None,) * 3
    assert private.ready == 1
    assert first.weights == {"private": 100, "burst": 0}


def test_demand_counts_every_request_arriving_at_both_frontends() -> None:
    world = rig("private-0")
    world.observe()
    world.gateway.serve("private-0", 120, protocol="http")
    world.gateway.serve("private-0", 40, protocol="grpc")
    world.gateway.requests[HTTP_FRONTEND] += 40  # arrived, never reached a server (503)
    snapshot = world.tick(seconds=4.0)
    assert snapshot.demand_rps == pytest.approx((120 + 40 + 40) / 4)
    assert snapshot.pool("private").served_rps == pytest.approx((120 + 40) / 4)


def test_pool_rates_come_from_gateway_and_triton_over_the_interval() -> None:
    world = rig("private-0", "private-1", "burst-0")
    world.observe()
    world.serve("private-0", 60, queue_ms=1.0, compute_ms=5.0)
    world.serve("private-1", 20, queue_ms=5.0, compute_ms=5.0)
    world.serve("burst-0", 20, queue_ms=0.5, compute_ms=10.0, errors=4)
    snapshot = world.tick(seconds=2.0)

    private, burst = snapshot.pool("private"), snapshot.pool("burst")
    assert private.served_rps == pytest.approx(40.0)
    assert private.queue_time_ms == pytest.approx((60 * 1.0 + 20 * 5.0) / 80)
    assert private.queue_time_p99_ms == pytest.approx(5.0)  # the worse replica's average
    assert private.service_rate_rps == pytest.approx(200.0)  # 5 ms per request
    assert burst.served_rps == pytest.approx(10.0)
    assert burst.failed_rps == pytest.approx(2.0)
    assert burst.service_rate_rps == pytest.approx(100.0)
    assert snapshot.demand_rps == pytest.approx(50.0)


def test_service_rate_scales_with_the_model_instances_of_the_pool() -> None:
    world = rig("private-0", instances={"private": 2})
    world.observe()
    world.serve("private-0", 40, compute_ms=10.0)
    assert world.tick().pool("private").service_rate_rps == pytest.approx(200.0)


@pytest.mark.parametrize(
    ("gateway_errors", "triton_failures", "failed_rps"),
    [(6, 0, 3.0), (0, 4, 2.0), (6, 4, 3.0)],
    ids=["gateway-5xx-only", "triton-failures-only", "same-failures-seen-by-both"],
)
def test_failed_requests_are_not_counted_twice(
    gateway_errors: int, triton_failures: int, failed_rps: float
) -> None:
    world = rig("private-0")
    world.observe()
    world.serve("private-0", 30, errors=gateway_errors, failures=triton_failures)
    assert world.tick(seconds=2.0).pool("private").failed_rps == pytest.approx(failed_rps)


def test_a_rate_spans_the_real_interval_since_the_last_successful_read() -> None:
    world = rig("private-0")
    world.gateway.down = True  # Triton's own counters are then the only measure
    world.observe()
    world.unreadable.add("private-0")
    world.tick(seconds=2.0)
    world.unreadable.clear()
    world.serve("private-0", 100)
    assert world.tick(seconds=2.0).pool("private").served_rps == pytest.approx(100 / 4)


# --- phases -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alive", "ready", "gateway_ready", "phase"),
    [
        (True, True, True, "ready"),
        (True, True, False, "starting"),
        (True, False, False, "starting"),
        (True, False, True, "starting"),
        (False, False, False, "failed"),
        (False, True, True, "failed"),
    ],
    ids=[
        "serving",
        "ready-but-gateway-check-pending",
        "loading-model",
        "triton-unready-gateway-not-yet-noticed",
        "exited",
        "exited-gateway-not-yet-noticed",
    ],
)
def test_replica_phase(alive: bool, ready: bool, gateway_ready: bool, phase: str) -> None:
    world = rig()
    world.add("private-0", alive=alive, ready=ready, started_at=123.0)
    world.gateway.servers["private-0"].ready = gateway_ready
    (replica,) = world.observe().pool("private").replicas
    assert (replica.name, replica.phase, replica.started_at) == ("private-0", phase, 123.0)


@pytest.mark.parametrize(
    ("alive", "ready", "gateway_ready", "phase"),
    [
        (True, True, True, "draining"),
        (True, True, False, "draining"),
        (True, False, False, "draining"),
        (False, False, False, "failed"),
    ],
    ids=["noticed-while-serving", "noticed-and-drained", "noticed-while-loading", "gone"],
)
def test_a_replica_with_notice_it_will_stop_is_draining_until_it_exits(
    alive: bool, ready: bool, gateway_ready: bool, phase: str
) -> None:
    world = rig("private-0")
    world.add("private-1", alive=alive, ready=ready, draining=True)
    world.gateway.servers["private-1"].ready = gateway_ready
    private = world.observe().pool("private")
    assert [r.phase for r in private.replicas] == ["ready", phase]
    assert private.ready == 1  # never capacity
    assert private.running == (2 if alive else 1)  # billed while it runs


def test_a_pool_with_no_replicas_serves_nothing_even_when_nothing_can_be_read() -> None:
    world = rig("private-0")
    world.gateway.down = True
    for snapshot in (world.observe(), world.tick(seconds=STALE_AFTER_S * 3)):
        burst = snapshot.pool("burst")
        assert (burst.served_rps, burst.failed_rps, burst.replicas) == (0.0, 0.0, ())


# --- staleness ----------------------------------------------------------------------------

ELAPSED = [(4.0, True), (STALE_AFTER_S - 0.1, True), (STALE_AFTER_S, False), (60.0, False)]
ELAPSED_IDS = ["reused-soon-after", "reused-just-inside", "none-at-the-limit", "none-long-after"]


def measured_world() -> Rig:
    """Two ticks of traffic: every value has been measured once, at START + 2 s."""
    world = rig("private-0")
    world.observe()
    world.serve("private-0", 50, queue_ms=3.0)
    world.tick(seconds=2.0)
    return world


@pytest.mark.parametrize(("elapsed", "reused"), ELAPSED, ids=ELAPSED_IDS)
def test_demand_and_weights_outlive_an_unreachable_gateway_only_briefly(
    elapsed: float, reused: bool
) -> None:
    world = measured_world()
    world.gateway.down = True
    snapshot = world.tick(seconds=elapsed)
    assert snapshot.demand_rps == (25.0 if reused else None)
    assert snapshot.weights == ({"private": 100, "burst": 0} if reused else {})
    assert world.observer.gateway_counters() == {}


@pytest.mark.parametrize(("elapsed", "reused"), ELAPSED, ids=ELAPSED_IDS)
def test_queue_time_outlives_unreadable_triton_metrics_only_briefly(
    elapsed: float, reused: bool
) -> None:
    world = measured_world()
    world.unreadable.add("private-0")
    private = world.tick(seconds=elapsed).pool("private")
    assert private.queue_time_ms == (pytest.approx(3.0) if reused else None)
    assert private.queue_time_p99_ms == (pytest.approx(3.0) if reused else None)
    assert private.served_rps == 0.0  # the gateway still counts, fresh: nothing came


def test_a_replica_whose_scrape_fails_contributes_nothing() -> None:
    world = rig("private-0", "private-1")
    world.observe()
    world.unreadable.add("private-1")
    world.serve("private-0", 40, queue_ms=2.0, compute_ms=4.0)
    world.serve("private-1", 40, queue_ms=9.0, compute_ms=20.0)
    private = world.tick().pool("private")
    assert private.queue_time_ms == pytest.approx(2.0)
    assert private.service_rate_rps == pytest.approx(250.0)
    assert private.served_rps == pytest.approx(40.0)  # the gateway saw both


def test_a_replica_that_does_not_answer_in_time_contributes_nothing() -> None:
    world = rig("private-0", "private-1")
    released = threading.Event()
    answer = world.fetch

    def slow_for_private_1(url: str, timeout_s: float) -> str:
        if "private-1" in url:
            released.wait(timeout=5)
        return answer(url, timeout_s)

    world.observer.fetch = slow_for_private_1
    world.observer.settings = ObserveSettings(scrape_timeout_s=0.05)
    try:
        released.set()
        world.observe()
        released.clear()
        world.serve("private-0", 40, queue_ms=2.0)
        world.serve("private-1", 40, queue_ms=9.0)
        assert world.tick().pool("private").queue_time_ms == pytest.approx(2.0)
    finally:
        released.set()


# --- restarts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("new_process", "served_since"),
    [(True, 10), (True, 100), (False, 10)],
    ids=["replica-restarted", "restarted-and-busier-than-before", "counters-reset"],
)
def test_a_restart_starts_the_replica_afresh_without_negative_rates(
    new_process: bool, served_since: int
) -> None:
    world = rig("private-0", "private-1")
    world.observe()
    world.serve("private-0", 40, queue_ms=2.0)
    world.serve("private-1", 40, queue_ms=8.0)
    world.tick()

    world.pages["private-1"] = TritonPage()  # Triton counts from 0 again
    if new_process:
        world.add("private-1", started_at=99.0)
    world.serve("private-0", 40, queue_ms=2.0)
    world.serve("private-1", served_since, queue_ms=8.0)
    assert world.tick().pool("private").queue_time_ms == pytest.approx(2.0)

    world.serve("private-0", 40, queue_ms=2.0)
    world.serve("private-1", 40, queue_ms=8.0)
    assert world.tick().pool("private").queue_time_ms == pytest.approx(5.0)


def test_a_restarted_gateway_gives_no_negative_demand() -> None:
    world = measured_world()  # 25 rps so far
    world.gateway = FakeGateway()  # counters from 0
    world.observer.gateway = world.gateway
    world.gateway.servers["private-0"] = Server()
    assert world.tick().demand_rps == 25.0  # nothing fresh to say: the last value
    world.gateway.serve("private-0", 20)
    assert world.tick().demand_rps == pytest.approx(10.0)


# --- weights, counters, drivers -----------------------------------------------------------


@pytest.mark.parametrize(
    ("servers", "weights"),
    [
        ({"private-0": (256, True), "private-1": (256, True), "burst-0": (128, True)}, (80, 20)),
        ({"private-0": (256, True), "burst-0": (256, False)}, (100, 0)),
        ({"private-0": (1, True), "burst-0": (2, True)}, (33, 67)),
        ({"private-0": (0, True), "burst-0": (256, False)}, (0, 0)),
    ],
    ids=["80-20", "unready-server-takes-nothing", "rounded-to-100", "nothing-routed"],
)
def test_weights_are_each_pools_share_of_ready_servers(
    servers: dict[str, tuple[int, bool]], weights: tuple[int, int]
) -> None:
    world = rig(*servers)
    for name, (weight, ready) in servers.items():
        world.gateway.servers[name].weight = weight
        world.gateway.servers[name].ready = ready
    assert world.observe().weights == dict(zip(("private", "burst"), weights, strict=True))


def test_gateway_counters_are_cumulative_per_pool_over_both_backends() -> None:
    world = rig("private-0", "private-1", "burst-0")
    world.serve("private-0", 30, errors=2)
    world.serve("private-1", 10)
    world.serve("burst-0", 6, errors=6)
    world.observe()
    assert world.observer.gateway_counters() == {"private": (40, 2), "burst": (6, 6)}


def test_a_failing_driver_is_trusted_for_the_stale_window_then_raises() -> None:
    world = rig("private-0")
    world.observe()
    world.driver_error = TemporaryError("kubernetes API timed out")
    assert world.tick(seconds=STALE_AFTER_S - 1).pool("private").ready == 1
    with pytest.raises(TemporaryError, match="listed no replicas"):
        world.tick(seconds=1.0)


def test_burst_spend_comes_from_the_callable_given() -> None:
    world = rig("private-0")
    world.observer.burst_spend = lambda: 12.5
    assert world.observe().burst_spend_this_month_usd == 12.5


def test_a_kubernetes_pod_is_ready_when_its_pool_has_a_ready_gateway_server():
    """Pods are not gateway servers by name: the pool's slots stand in for them."""
    world = rig("private-0")
    world.targets["triton-7d9f-abcde"] = ReplicaTarget(
        "triton-7d9f-abcde", "burst", True, True, 0.0, ""
    )
    world.gateway.servers["burst-0"] = Server()
    assert world.observe().pool("burst").ready == 1
    world.gateway.servers["burst-0"].ready = False
    assert world.tick().pool("burst").ready == 0


# --- metrics age --------------------------------------------------------------------------


def test_metrics_age_is_zero_while_triton_answers() -> None:
    world = rig("private-0", "burst-0")
    first = world.observe()
    assert [first.pool(name).metrics_age_s for name in ("private", "burst")] == [0.0, 0.0]
    assert world.tick(seconds=2.0).pool("private").metrics_age_s == 0.0


def test_metrics_age_counts_from_the_last_successful_scrape_while_the_gateway_answers() -> None:
    world = measured_world()  # last scraped at START + 2 s
    world.unreadable.add("private-0")  # a firewall drops the metrics port
    ages = [world.tick(seconds=2.0).pool("private").metrics_age_s for _ in range(6)]
    assert ages == [2.0, 4.0, 6.0, 8.0, 10.0, 12.0]
    snapshot = world.observe()
    assert snapshot.demand_rps is not None  # the gateway is fine: only Triton is dark
    assert snapshot.pool("private").ready == 1
    world.unreadable.clear()
    assert world.tick(seconds=2.0).pool("private").metrics_age_s == 0.0


def test_metrics_age_is_the_freshest_of_the_pools_ready_replicas() -> None:
    world = rig("private-0", "private-1")
    world.observe()
    world.unreadable.add("private-1")
    assert world.tick(seconds=30.0).pool("private").metrics_age_s == 0.0


def test_a_ready_replica_never_scraped_counts_from_when_it_was_first_listed() -> None:
    world = rig("private-0")
    world.unreadable.add("private-0")
    assert world.observe().pool("private").metrics_age_s == 0.0
    assert world.tick(seconds=7.0).pool("private").metrics_age_s == 7.0


def test_a_replica_ready_after_a_long_cold_start_has_fresh_metrics_at_once() -> None:
    """Unscrapable for 90 s while it loads, then ready and scraped in the same tick:
    its pool must not look like a metrics outage."""
    world = rig("private-0")
    world.add("burst-0", ready=False)
    world.gateway.servers["burst-0"].ready = False
    world.unreadable.add("burst-0")
    world.observe()
    for _ in range(45):
        assert world.tick(seconds=2.0).pool("burst").metrics_age_s is None  # none ready
    world.add("burst-0", ready=True)
    world.gateway.servers["burst-0"].ready = True
    world.unreadable.clear()
    burst = world.tick(seconds=2.0).pool("burst")
    assert (burst.ready, burst.metrics_age_s) == (1, 0.0)


def test_a_restarted_replica_counts_from_its_own_listing_not_its_predecessors_scrape() -> None:
    world = rig("private-0")
    world.observe()
    world.unreadable.add("private-0")
    world.tick(seconds=20.0)
    world.add("private-0", started_at=99.0)  # same slot, a new process
    assert world.tick(seconds=2.0).pool("private").metrics_age_s == 0.0
    assert world.tick(seconds=2.0).pool("private").metrics_age_s == 2.0


@pytest.mark.parametrize(
    ("alive", "draining"),
    [(False, False), (True, True)],
    ids=["killed-is-failover-not-outage", "draining-is-no-capacity"],
)
def test_metrics_age_is_none_without_a_ready_replica(alive: bool, draining: bool) -> None:
    world = rig()
    world.add("private-0", alive=alive, draining=draining)
    world.unreadable.add("private-0")
    world.observe()
    private = world.tick(seconds=STALE_AFTER_S * 3).pool("private")
    assert private.ready == 0
    assert private.metrics_age_s is None


def test_a_draining_replica_without_metrics_is_no_warning(caplog: pytest.LogCaptureFixture):
    """A terminating pod's /metrics goes away as it stops: expected, not worth a warning."""
    world = rig("private-0")
    world.add("private-1", draining=True)
    world.unreadable.update({"private-0", "private-1"})
    with caplog.at_level(logging.DEBUG, logger="spillover.controller.scraping"):
        world.observe()
    said = [(r.getMessage(), r.levelno) for r in caplog.records]
    levels = {message.split()[3]: level for message, level in said if "no metrics" in message}
    assert levels == {"private-0": logging.WARNING, "private-1": logging.DEBUG}
