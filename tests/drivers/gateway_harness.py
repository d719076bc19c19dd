"""Real processes for the gateway tests: stand-in replicas, free ports, clients.

Everything started here runs in its own session and is stopped by process
group, so a failing test leaves nothing behind.
"""

from __future__ import annotations

import http.client
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from tritonclient.grpc import service_pb2

from spillover.drivers import haproxy
from spillover.model.contract import MODEL_NAME

FAKE_TRITON = Path(__file__).with_name("fake_triton.py")
REPLICA_START_TIMEOUT_S = 15.0
INFER_PATH = "/v2/models/recommender/infer"
GRPC_INFER_METHOD = "/inference.GRPCInferenceService/ModelInfer"
GRPC_INFER_REQUEST = service_pb2.ModelInferRequest(model_name=MODEL_NAME).SerializeToString()
"""The gateway lets a gRPC inference through only when its message names the served model."""


def stats_row(
    backend: str, server: str, status: haproxy.ServerState = "UP", current_sessions: int = 0
) -> haproxy.ServerStats:
    """One server's `show stat` row as the runtime API returns it, for stand-in gateways:
    checked, weight 1, no traffic served yet."""
    return haproxy.ServerStats(
        backend=backend,
        server=server,
        pool=haproxy.pool_of_server(server),
        status=status,
        raw_status=status,
        weight=1,
        current_sessions=current_sessions,
        total_sessions=0,
        responses_by_class={},
        check_status="L7OK",
        seconds_since_change=0,
        retries=0,
        redispatches=0,
    )


def free_port() -> int:
    """A loopback port free right now (the kernel picks it, so parallel tests don't collide)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class FakeReplica:
    """One running fake_triton.py process."""

    name: str
    process: subprocess.Popen[bytes]
    http_port: int = 0
    grpc_port: int = 0

    @property
    def pool(self) -> str:
        return haproxy.pool_of_server(self.name)

    def slot(self) -> haproxy.ServerSlot:
        return haproxy.ServerSlot(self.name, self.pool, self.http_port, self.grpc_port)

    def kill(self) -> None:
        """SIGKILL: the replica vanishes mid-request, like an OOM-killed Triton."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=5)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=5)


def start_replicas(specs: list[tuple[str, list[str]]]) -> list[FakeReplica]:
    """Start (name, extra args) replicas in parallel; return them once all report ports."""
    replicas = [
        FakeReplica(
            name,
            subprocess.Popen(
                [sys.executable, str(FAKE_TRITON), "--name", name, *args],
                stdout=subprocess.PIPE,
                start_new_session=True,
            ),
        )
        for name, args in specs
    ]
    try:
        for replica in replicas:
            ports = json.loads(_read_line(replica.process, REPLICA_START_TIMEOUT_S))
            replica.http_port, replica.grpc_port = ports["http_port"], ports["grpc_port"]
    except BaseException:
        for replica in replicas:
            replica.stop()
        raise
    return replicas


def _read_line(process: subprocess.Popen[bytes], timeout_s: float) -> str:
    assert process.stdout is not None
    readable, _, _ = select.select([process.stdout], [], [], timeout_s)
    line = process.stdout.readline() if readable else b""
    if not line:
        raise RuntimeError(f"fake replica (pid {process.pid}) did not report its ports")
    return line.decode()


def unused_slot(name: str) -> haproxy.ServerSlot:
    """A slot with no replica behind it: its ports are free, nothing listens."""
    return haproxy.ServerSlot(name, haproxy.pool_of_server(name), free_port(), free_port())


def make_spec(run_dir: Path, slots: list[haproxy.ServerSlot]) -> haproxy.GatewaySpec:
    return haproxy.GatewaySpec(
        http_port=free_port(),
        grpc_port=free_port(),
        metrics_port=free_port(),
        socket_path=run_dir / "haproxy.sock",
        slots=tuple(slots),
    )


class HttpClient:
    """KServe v2 REST inference through the gateway, over one kept-alive connection."""

    def __init__(self, port: int, timeout_s: float = 10.0) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)

    def infer(self) -> str:
        """The name of the replica that answered; raises on anything but 200."""
        self.connection.request("POST", INFER_PATH, body=b'{"inputs": []}')
        response = self.connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"gateway answered {response.status}: {body[:200]!r}")
        return str(json.loads(body)["server"])

    def close(self) -> None:
        self.connection.close()


class GrpcClient:
    """A unary gRPC call through the gateway's HTTP/2 frontend."""

    def __init__(self, port: int, timeout_s: float = 10.0) -> None:
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.call = self.channel.unary_unary(GRPC_INFER_METHOD)
        self.timeout_s = timeout_s

    def infer(self) -> str:
        return bytes(self.call(GRPC_INFER_REQUEST, timeout=self.timeout_s)).decode()

    def close(self) -> None:
        self.channel.close()


def make_client(protocol: str, gateway_spec: haproxy.GatewaySpec) -> HttpClient | GrpcClient:
    if protocol == "http":
        return HttpClient(gateway_spec.http_port)
    return GrpcClient(gateway_spec.grpc_port)


def count_answers(client: HttpClient | GrpcClient, requests: int) -> Counter[str]:
    return Counter(client.infer() for _ in range(requests))


def wait_for(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.02) -> float:
    """Seconds until predicate() is true; AssertionError after timeout_s."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(interval_s)
    return time.monotonic() - start
