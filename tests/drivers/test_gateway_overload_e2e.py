"""A reserve smaller than its demand, through the real haproxy: the gateway spreads what
the replicas can take and refuses the rest at once, with a status a client can act on
(HTTP 503 + Retry-After, gRPC UNAVAILABLE), never by leaving it to time out."""

from __future__ import annotations

import dataclasses
import http.client
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from spillover.drivers import haproxy
from tests.drivers.gateway_harness import (
    GRPC_INFER_METHOD,
    GRPC_INFER_REQUEST,
    INFER_PATH,
    FakeReplica,
    make_spec,
    start_replicas,
)

SERVICE_S = 0.5
"""Each stand-in replica takes this long per request: two at once fill its maxconn."""
MAXCONN = 2
OFFERED = 12
"""Concurrent requests: six times what the replicas take at once."""
CLIENT_TIMEOUT_S = 10.0
QUEUE_S = haproxy.Timeouts().queue_ms / 1000


@pytest.fixture
def overloaded() -> Iterator[Callable[[list[str]], haproxy.GatewaySpec]]:
    """Slow replicas of maxconn 2 behind a real gateway, all enabled and weighed."""
    run_dir = Path(tempfile.mkdtemp(prefix="spillover-ov-", dir="/tmp"))
    started: list[FakeReplica] = []
    gateways: list[haproxy.GatewayProcess] = []

    def launch(names: list[str]) -> haproxy.GatewaySpec:
        started.extend(start_replicas([(name, ["--delay", str(SERVICE_S)]) for name in names]))
        slots = [dataclasses.replace(r.slot(), maxconn=MAXCONN) for r in started]
        spec = make_spec(run_dir, slots)
        gateways.append(haproxy.start_gateway(spec, run_dir))
        api = gateways[-1].runtime_api()
        for name in names:
            api.enable_server(name)
        for name in names:
            api.wait_ready(name, timeout=5.0)
        pools = {haproxy.pool_of_server(name) for name in names}
        # Private is preferred 99 to 1: a full private must still spill to burst's free slots.
        api.set_pool_weights({pool: 99 if pool == "private" else 1 for pool in pools})
        return spec

    yield launch
    for process in gateways:
        process.stop()
    for replica in started:
        replica.stop()
    shutil.rmtree(run_dir, ignore_errors=True)


def http_infer(port: int) -> tuple[int, dict[str, str], bytes, float]:
    start = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT_S)
    try:
        connection.request("POST", INFER_PATH, body=b'{"inputs": []}')
        response = connection.getresponse()
        body = response.read()
        headers = {key.lower(): value for key, value in response.getheaders()}
        return response.status, headers, body, time.monotonic() - start
    finally:
        connection.close()


def grpc_infer(port: int) -> tuple[grpc.StatusCode, str, float]:
    start = time.monotonic()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(GRPC_INFER_METHOD)
        try:
            answer = bytes(call(GRPC_INFER_REQUEST, timeout=CLIENT_TIMEOUT_S)).decode()
            return grpc.StatusCode.OK, answer, time.monotonic() - start
        except grpc.RpcError as error:
            return error.code(), error.details() or "", time.monotonic() - start


def at_once(call: Callable[[], tuple], count: int) -> list[tuple]:
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda _: call(), range(count)))


def test_http_overload_is_served_up_to_the_replicas_and_refused_fast_with_retry_after(
    overloaded,
):
    spec = overloaded(["burst-0"])
    answers = at_once(lambda: http_infer(spec.http_port), OFFERED)
    served = [a for a in answers if a[0] == 200]
    refused = [a for a in answers if a[0] != 200]
    assert len(served) >= MAXCONN  # what the replica can take, it serves
    assert len(refused) >= OFFERED // 2
    for status, headers, body, elapsed in refused:
        assert status == 503
        assert headers["retry-after"] == str(spec.retry_after_s)
        assert b"no replica could take the request in time" in body
        # Refused once the queue timeout ran out: nowhere near the client's timeout.
        assert elapsed < QUEUE_S + 2 * SERVICE_S
    assert max(a[3] for a in answers) < CLIENT_TIMEOUT_S / 3


def test_grpc_overload_is_refused_as_unavailable_not_deadline_exceeded(overloaded):
    spec = overloaded(["burst-0"])
    answers = at_once(lambda: grpc_infer(spec.grpc_port), OFFERED)
    codes = Counter(code for code, _, _ in answers)
    assert codes[grpc.StatusCode.OK] >= MAXCONN
    assert codes[grpc.StatusCode.UNAVAILABLE] >= OFFERED // 2
    assert set(codes) == {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}
    for code, details, elapsed in answers:
        if code is grpc.StatusCode.UNAVAILABLE:
            assert "no replica could take the request in time" in details
            assert elapsed < QUEUE_S + 2 * SERVICE_S


def test_a_full_replica_spills_to_one_with_a_free_slot_whatever_the_weights(overloaded):
    spec = overloaded(["private-0", "burst-0"])
    answers = at_once(lambda: http_infer(spec.http_port), 2 * MAXCONN)
    assert [a[0] for a in answers] == [200] * (2 * MAXCONN)
    servers = Counter(a[2].decode() for a in answers)
    # Weights 99 to 1, yet each replica took its maxconn: together they served all four
    # in one service time instead of queueing on private.
    assert servers == Counter({'{"server": "private-0"}': 2, '{"server": "burst-0"}': 2})
    assert max(a[3] for a in answers) < 2 * SERVICE_S
