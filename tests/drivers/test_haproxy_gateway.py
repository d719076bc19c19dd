"""The gateway against the real haproxy binary and real (stand-in) replica processes.

What a user would notice: traffic splits by pool share, a drained replica gets
no new requests, a killed replica costs no failed request and is marked DOWN
within the health-check bound, and the runtime API says clearly what is wrong.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from spillover.drivers import haproxy
from spillover.drivers.haproxy_spec import GRPC_FRONTEND, HTTP_FRONTEND, TRAFFIC_FRONTENDS
from tests.drivers.gateway_harness import (
    INFER_PATH,
    FakeReplica,
    count_answers,
    free_port,
    make_client,
    make_spec,
    start_replicas,
    unused_slot,
    wait_for,
)

PROTOCOLS = ["http", "grpc"]
READY_TIMEOUT_S = 5.0
"""rise 2 checks at fastinter 200 ms make a slot ready in well under a second."""


@dataclass
class Gateway:
    """A running gateway with its replicas; everything here is stopped after the test."""

    spec: haproxy.GatewaySpec
    process: haproxy.GatewayProcess
    api: haproxy.RuntimeApi
    replicas: dict[str, FakeReplica] = field(default_factory=dict)


@pytest.fixture
def run_dir() -> Iterator[Path]:
    # Short and fixed-depth: unix socket paths must stay under 108 bytes.
    path = Path(tempfile.mkdtemp(prefix="spillover-gw-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


GatewayFactory = Callable[..., Gateway]


@pytest.fixture
def launch(run_dir: Path) -> Iterator[GatewayFactory]:
    """Start replicas (name, args) and a gateway over them plus `empty_slots`, all enabled."""
    started: list[FakeReplica] = []
    gateways: list[haproxy.GatewayProcess] = []

    def factory(
        replicas: list[tuple[str, list[str]]],
        empty_slots: tuple[str, ...] = (),
        tcp_runtime_api: bool = False,
    ) -> Gateway:
        started.extend(start_replicas(replicas))
        slots = [replica.slot() for replica in started] + [unused_slot(n) for n in empty_slots]
        spec = make_spec(run_dir, slots)
        if tcp_runtime_api:
            spec = dataclasses.replace(spec, runtime_api_port=free_port())
        gateways.append(haproxy.start_gateway(spec, run_dir))
        gateway = Gateway(spec, gateways[-1], gateways[-1].runtime_api())
        gateway.replicas = {replica.name: replica for replica in started}
        return gateway

    yield factory
    for process in gateways:
        process.stop()
    for replica in started:
        replica.stop()


def healthy(*names: str) -> list[tuple[str, list[str]]]:
    return [(name, []) for name in names]


def enable_and_wait(gateway: Gateway, *names: str) -> None:
    for name in names:
        gateway.api.enable_server(name)
    for name in names:
        gateway.api.wait_ready(name, timeout=READY_TIMEOUT_S)


def status_of(gateway: Gateway, name: str) -> dict[str, str]:
    return {row.backend: row.status for row in gateway.api.server_stats() if row.server == name}


def pool_counts(answers: Counter[str]) -> Counter[str]:
    pools: Counter[str] = Counter()
    for name, count in answers.items():
        pools[haproxy.pool_of_server(name)] += count
    return pools


# --- process --------------------------------------------------------------------------


def test_gateway_starts_with_owner_only_socket_and_every_slot_in_maintenance(
    launch: GatewayFactory,
) -> None:
    gateway = launch(healthy("private-0"), empty_slots=("burst-0",))
    mode = stat.S_IMODE(gateway.spec.socket_path.stat().st_mode)
    assert mode == 0o600, oct(mode)
    statuses = {(row.backend, row.server): row.status for row in gateway.api.server_stats()}
    assert statuses == {
        (backend, server): "MAINT"
        for backend in haproxy.BACKENDS
        for server in ("private-0", "burst-0")
    }


def test_metrics_port_serves_prometheus_metrics_and_the_stats_page(
    launch: GatewayFactory,
) -> None:
    gateway = launch(healthy("private-0"))
    enable_and_wait(gateway, "private-0")
    base = f"http://127.0.0.1:{gateway.spec.metrics_port}"
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    with urllib.request.urlopen(f"{base}/stats", timeout=5) as response:
        assert response.status == 200
    for backend in haproxy.BACKENDS:
        up = f'haproxy_server_status{{proxy="{backend}",server="private-0",state="UP"}} 1'
        assert up in metrics


def test_stop_gateway_ends_the_process_and_removes_the_socket(launch: GatewayFactory) -> None:
    gateway = launch(healthy("private-0"))
    assert haproxy.stop_gateway(gateway.process.pid, gateway.process.started)
    assert not gateway.spec.socket_path.exists()
    assert not Path(f"/proc/{gateway.process.pid}").exists()
    assert not haproxy.stop_gateway(gateway.process.pid), "stopping twice must be harmless"


def test_gateway_restarts_after_a_kill_left_its_socket_behind(
    launch: GatewayFactory, run_dir: Path
) -> None:
    gateway = launch([], empty_slots=("private-0",))
    os.killpg(gateway.process.pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):  # subprocess may have reaped it already
        os.waitpid(gateway.process.pid, 0)
    assert gateway.spec.socket_path.exists(), "haproxy is expected to leave it when killed"

    again = haproxy.start_gateway(gateway.spec, run_dir)
    try:
        assert again.runtime_api().ready_servers() == []
    finally:
        again.stop()


def test_second_gateway_on_a_live_socket_is_refused(launch: GatewayFactory, run_dir: Path) -> None:
    gateway = launch([], empty_slots=("private-0",))
    with pytest.raises(haproxy.GatewayStartError, match="already answers"):
        haproxy.start_gateway(gateway.spec, run_dir)
    assert gateway.api.server_stats(), "the running gateway must be left alone"


def test_stop_gateway_leaves_a_pid_that_is_not_haproxy_alone() -> None:
    bystander = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        assert not haproxy.stop_gateway(bystander.pid)
        assert bystander.poll() is None
    finally:
        os.killpg(bystander.pid, signal.SIGKILL)
        bystander.wait(timeout=5)


def test_second_gateway_on_a_taken_port_fails_with_haproxys_reason(
    launch: GatewayFactory, run_dir: Path
) -> None:
    first = launch([], empty_slots=("private-0",))
    with tempfile.TemporaryDirectory(prefix="spillover-gw-", dir="/tmp") as elsewhere:
        clash = dataclasses.replace(
            make_spec(Path(elsewhere), list(first.spec.slots)), http_port=first.spec.http_port
        )
        # haproxy binds with SO_REUSEPORT unless told not to: without `noreuseport` this
        # would start and silently take half of the first gateway's traffic.
        with pytest.raises(haproxy.GatewayStartError, match="cannot bind"):
            gateway = haproxy.start_gateway(clash, Path(elsewhere))
            gateway.stop()


# --- weights ----------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_pool_weights_split_traffic_80_20(launch: GatewayFactory, protocol: str) -> None:
    gateway = launch(healthy("private-0", "private-1", "burst-0"))
    enable_and_wait(gateway, "private-0", "private-1", "burst-0")

    applied = gateway.api.set_pool_weights({"private": 80, "burst": 20})
    assert applied == {"private-0": 256, "private-1": 256, "burst-0": 128}

    client = make_client(protocol, gateway.spec)
    try:
        answers = count_answers(client, 500)
    finally:
        client.close()
    # roundrobin is deterministic: the split is exact over each 5-request cycle and
    # off by at most a cycle's phase, so 500 requests land within 2 points of 80/20.
    assert pool_counts(answers)["private"] / 500 == pytest.approx(0.80, abs=0.02)
    assert answers["private-0"] == pytest.approx(answers["private-1"], abs=10)


def test_unready_server_gets_weight_zero_and_no_traffic(launch: GatewayFactory) -> None:
    gateway = launch(
        [("private-0", []), ("private-1", ["--health-status", "503"]), ("burst-0", [])],
        empty_slots=("burst-1",),
    )
    enable_and_wait(gateway, "private-0", "burst-0")
    gateway.api.enable_server("private-1")  # loading a model: readiness answers 503

    applied = gateway.api.set_pool_weights({"private": 80, "burst": 20})

    # private keeps its 80 on its one ready server; burst-1 (no replica, MAINT) gets 0 too.
    assert applied == {"private-0": 256, "private-1": 0, "burst-0": 64, "burst-1": 0}
    assert gateway.api.ready_servers("private") == ["private-0"]
    wait_for(lambda: set(status_of(gateway, "private-1").values()) == {"DOWN"}, timeout_s=3)
    answers = count_answers(make_client("http", gateway.spec), 100)
    assert set(answers) == {"private-0", "burst-0"}
    assert answers["private-0"] == pytest.approx(80, abs=2)


def test_weights_reapplied_when_a_server_becomes_ready(launch: GatewayFactory) -> None:
    gateway = launch(healthy("private-0", "private-1"))
    enable_and_wait(gateway, "private-0")
    assert gateway.api.set_pool_weights({"private": 1})["private-1"] == 0

    enable_and_wait(gateway, "private-1")
    applied = gateway.api.set_pool_weights({"private": 1})

    assert applied == {"private-0": 256, "private-1": 256}
    assert set(count_answers(make_client("http", gateway.spec), 20)) == {"private-0", "private-1"}


# --- drain ------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_drained_server_finishes_in_flight_requests_and_gets_no_new_ones(
    launch: GatewayFactory, protocol: str
) -> None:
    gateway = launch([("private-0", ["--delay", "0.5"]), ("private-1", ["--delay", "0.5"])])
    enable_and_wait(gateway, "private-0", "private-1")

    def infer_once(_: int) -> str:
        client = make_client(protocol, gateway.spec)
        try:
            return client.infer()
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=4) as pool:
        in_flight = [pool.submit(infer_once, i) for i in range(4)]  # 2 per server, 0.5 s each
        wait_for(lambda: _sessions(gateway, "private-0", "private-1") == 4, timeout_s=2)
        gateway.api.drain_server("private-0")
        gateway.api.wait_drained("private-0", timeout=5)
        assert [f.result(timeout=5) for f in in_flight].count("private-0") == 2

    assert status_of(gateway, "private-0") == {b: "DRAIN" for b in haproxy.BACKENDS}
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert set(pool.map(infer_once, range(8))) == {"private-1"}


def _sessions(gateway: Gateway, *names: str) -> int:
    return sum(row.current_sessions for row in gateway.api.server_stats() if row.server in names)


# --- failure ----------------------------------------------------------------------------


@dataclass
class TrafficResult:
    answers: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


def run_traffic(
    gateway: Gateway, protocol: str, stop: threading.Event, result: TrafficResult
) -> None:
    """One client's bounded request loop: until stop is set, at most 5,000 requests."""
    client = make_client(protocol, gateway.spec)
    try:
        for _ in range(5000):
            if stop.is_set():
                return
            try:
                result.answers[client.infer()] += 1
            except Exception as error:  # counted, then reported by the test's assert
                result.failures.append(repr(error))
    finally:
        client.close()


BACKEND_OF = {"http": haproxy.HTTP_BACKEND, "grpc": haproxy.GRPC_BACKEND}


def seconds_until_down(gateway: Gateway, name: str, timeout_s: float) -> dict[str, float]:
    """How long after now each backend takes to show ``name`` DOWN (polled every 10 ms)."""
    start, down_after = time.monotonic(), dict[str, float]()
    while len(down_after) < len(haproxy.BACKENDS):
        for backend, status in status_of(gateway, name).items():
            if status == "DOWN" and backend not in down_after:
                down_after[backend] = time.monotonic() - start
        assert time.monotonic() - start < timeout_s, f"{name} still up: {status_of(gateway, name)}"
        time.sleep(0.01)
    return down_after


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_sigkilled_replica_costs_no_failed_request_and_is_marked_down(
    launch: GatewayFactory, protocol: str
) -> None:
    names = ("private-0", "private-1", "burst-0")
    # 8 clients and 50 ms per request keep 2-3 requests in flight on each replica,
    # so the kill always catches some mid-request: they must be retried elsewhere.
    gateway = launch([(name, ["--delay", "0.05"]) for name in names])
    enable_and_wait(gateway, *names)
    stop, result = threading.Event(), TrafficResult()
    clients = [
        threading.Thread(target=run_traffic, args=(gateway, protocol, stop, result))
        for _ in range(8)
    ]
    for client in clients:
        client.start()
    try:
        wait_for(lambda: result.answers["private-0"] > 10, timeout_s=5)
        gateway.replicas["private-0"].kill()
        down_after = seconds_until_down(gateway, "private-0", timeout_s=5)
        served_before = sum(result.answers.values())
        wait_for(lambda: sum(result.answers.values()) > served_before + 100, timeout_s=5)
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=15)

    health = gateway.spec.health
    busy, idle = (
        BACKEND_OF[protocol],
        next(b for b in haproxy.BACKENDS if b != BACKEND_OF[protocol]),
    )
    killed = next(
        row
        for row in gateway.api.server_stats()
        if (row.backend, row.server) == (busy, "private-0")
    )
    print(f"{protocol}: DOWN after {down_after}; moved {killed.redispatches}; {result.answers}")
    assert result.failures == []
    assert killed.redispatches > 0, "no request was in flight at the kill: the test proved nothing"
    # Checks alone need fall failures fastinter apart; faster means live traffic's
    # refused connection marked it (observe layer4, error-limit 1).
    assert down_after[busy] < health.fastinter_ms / 1000
    assert down_after[idle] <= health.worst_detection_ms() / 1000


def test_h2_backend_health_checks_pass_over_the_http_port(launch: GatewayFactory) -> None:
    gateway = launch(healthy("private-0"))
    enable_and_wait(gateway, "private-0")
    grpc_row = next(
        row for row in gateway.api.server_stats() if row.backend == haproxy.GRPC_BACKEND
    )
    assert (grpc_row.status, grpc_row.check_status) == ("UP", "L7OK")


# --- runtime API errors -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("act", "error", "message"),
    [
        (lambda api: api.enable_server("private-9"), haproxy.RuntimeCommandError, "No such server"),
        (lambda api: api.drain_server("burst-0"), haproxy.RuntimeCommandError, "No such server"),
        (lambda api: api.execute("show nothing"), haproxy.RuntimeCommandError, "Unknown command"),
        (lambda api: api.set_pool_weights({"cloud": 1}), ValueError, "unknown pool.*cloud"),
        (lambda api: api.set_pool_weights({"private": -1}), ValueError, "private=-1"),
        (lambda api: api.set_pool_weights({"private": 0}), ValueError, "all pool shares"),
        (
            lambda api: api.wait_ready("private-0", timeout=0.2),
            haproxy.GatewayWaitTimeoutError,
            "MAINT",
        ),
        (lambda api: api.enable_server("private-0 x"), ValueError, "<pool>-<index>"),
    ],
    ids=[
        "unknown-server",
        "slot-not-in-config",
        "unknown-command",
        "unknown-pool",
        "negative-share",
        "all-zero",
        "wait-ready-times-out",
        "name-with-space",
    ],
)
def test_runtime_api_errors_are_raised_clearly(
    launch: GatewayFactory,
    act: Callable[[haproxy.RuntimeApi], object],
    error: type[Exception],
    message: str,
) -> None:
    gateway = launch([], empty_slots=("private-0",))
    with pytest.raises(error, match=message):
        act(gateway.api)


def test_runtime_api_without_gateway_says_so(run_dir: Path) -> None:
    api = haproxy.RuntimeApi(run_dir / "haproxy.sock")
    with pytest.raises(haproxy.GatewayUnreachableError, match="is it running"):
        api.server_stats()


# --- traffic counters and the TCP runtime API -------------------------------------------


def post_inferences(port: int, requests: int) -> Counter[int]:
    """Statuses of `requests` KServe v2 REST inferences sent through the gateway."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    statuses: Counter[int] = Counter()
    try:
        for _ in range(requests):
            connection.request("POST", INFER_PATH, body=b'{"inputs": []}')
            response = connection.getresponse()
            response.read()
            statuses[response.status] += 1
    finally:
        connection.close()
    return statuses


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_frontend_counts_every_request_of_its_protocol(
    launch: GatewayFactory, protocol: str
) -> None:
    gateway = launch(healthy("private-0", "burst-0"))
    enable_and_wait(gateway, "private-0", "burst-0")
    gateway.api.set_pool_weights({"private": 1, "burst": 1})

    client = make_client(protocol, gateway.spec)
    try:
        count_answers(client, 30)
    finally:
        client.close()

    stats = gateway.api.stats()
    requests = {frontend.name: frontend.requests_total for frontend in stats.frontends}
    served_here = HTTP_FRONTEND if protocol == "http" else GRPC_FRONTEND
    assert requests == {name: 30 if name == served_here else 0 for name in TRAFFIC_FRONTENDS}
    assert stats.requests_total == 30
    backend = haproxy.HTTP_BACKEND if protocol == "http" else haproxy.GRPC_BACKEND
    responses = {row.server: row.responses_total for row in stats.servers if row.backend == backend}
    assert responses == {"private-0": 15, "burst-0": 15}


def test_server_errors_are_counted_on_the_server_that_gave_them(launch: GatewayFactory) -> None:
    gateway = launch([("private-0", ["--infer-status", "500"]), ("burst-0", [])])
    enable_and_wait(gateway, "private-0", "burst-0")
    gateway.api.set_pool_weights({"private": 1, "burst": 1})

    statuses = post_inferences(gateway.spec.http_port, 20)

    assert statuses == {500: 10, 200: 10}
    rows = {row.server: row for row in gateway.api.server_stats() if row.backend == "triton_http"}
    assert rows["private-0"].responses_by_class["5xx"] == 10
    assert rows["burst-0"].responses_by_class["5xx"] == 0
    assert rows["burst-0"].responses_total == 10


def test_runtime_api_over_tcp_reads_and_changes_the_gateway(launch: GatewayFactory) -> None:
    gateway = launch(healthy("private-0", "private-1"), tcp_runtime_api=True)
    over_tcp = haproxy.RuntimeApi(f"127.0.0.1:{gateway.spec.runtime_api_port}")
    assert over_tcp.tcp_address == ("127.0.0.1", gateway.spec.runtime_api_port)

    for name in ("private-0", "private-1"):
        over_tcp.enable_server(name)
        over_tcp.wait_ready(name, timeout=READY_TIMEOUT_S)
    over_tcp.drain_server("private-1")

    assert status_of(gateway, "private-1") == dict.fromkeys(haproxy.BACKENDS, "DRAIN")
    assert over_tcp.ready_servers() == ["private-0"]
    assert [row.server for row in over_tcp.server_stats()] == [
        row.server for row in gateway.api.server_stats()
    ]


def test_runtime_api_over_tcp_without_gateway_says_so() -> None:
    api = haproxy.RuntimeApi(f"127.0.0.1:{free_port()}", timeout_s=1.0)
    with pytest.raises(haproxy.GatewayUnreachableError, match="127.0.0.1:.*is it running"):
        api.stats()


@pytest.mark.parametrize(
    ("address", "tcp"),
    [
        ("127.0.0.1:9999", ("127.0.0.1", 9999)),
        ("[::1]:9999", ("::1", 9999)),
        ("spillover-gateway.spillover.svc:9999", ("spillover-gateway.spillover.svc", 9999)),
        ("/run/spillover/haproxy.sock", None),
        (Path("gateway:9999"), None),
    ],
    ids=["ipv4", "ipv6", "service-name", "unix-path", "path-object-is-unix"],
)
def test_runtime_api_address_is_tcp_only_for_host_and_port(
    address: str | Path, tcp: tuple[str, int] | None
) -> None:
    assert haproxy.RuntimeApi(address).tcp_address == tcp
