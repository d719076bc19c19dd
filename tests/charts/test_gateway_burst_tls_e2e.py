"""The gateway chart's TLS to a burst pool, with real HAProxy on both ends of the hop.

The chart's rendered haproxy.cfg runs on loopback (gateway_locally) in front of a stand-in for
the burst NLB's TLS listener: a second HAProxy that terminates TLS with a certificate made
here and forwards plain TCP to a fake Triton, as the NLB forwards to the pods. A request must
pass when the listener's certificate comes from the CA the chart was given, for the pool's
name; it must fail (no request sent to that listener) for a certificate from another CA or one
the right CA issued for another name.
"""

from __future__ import annotations

import http.client
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import helm_python as helm
import pytest

from spillover.drivers.haproxy_config import find_haproxy
from spillover.drivers.haproxy_runtime import ServerStats
from spillover.drivers.processes import log_tail, start_process, stop_group
from spillover.drivers.tritonserver import ReplicaPorts
from spillover.model.contract import MODEL_NAME
from tests.charts.gateway_locally import mounted, running_chart_gateway
from tests.charts.rendering import chart_dir, kube_version_floor, render
from tests.drivers.gateway_harness import FakeReplica, free_port, start_replicas, wait_for

POOL = "burst_spot"
SERVER_NAME = "triton-recommender-spot.burst.spillover.internal"
INFER_PATH = f"/v2/models/{MODEL_NAME}/infer"
GRPC_INFER = "/inference.GRPCInferenceService/ModelInfer"
GRPC_REQUEST = b"\x0a\x0b" + MODEL_NAME.encode()
"""A ModelInferRequest naming the served model (field 1), as the gateway's allow-list reads it."""


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@dataclass(frozen=True)
class Authority:
    """A CA made for the test: its certificate and key files."""

    cert: Path
    key: Path

    def issue(self, directory: Path, name: str) -> Path:
        """A server certificate for DNS name ``name``, with its key, as one PEM HAProxy loads."""
        key, request, cert = (directory / f"{name}.{ext}" for ext in ("key", "csr", "crt"))
        openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(request),
            "-subj", f"/CN={name}",
        )  # fmt: skip
        extensions = directory / f"{name}.ext"
        extensions.write_text(f"subjectAltName=DNS:{name}\nextendedKeyUsage=serverAuth\n")
        openssl(
            "x509", "-req", "-in", str(request), "-CA", str(self.cert), "-CAkey", str(self.key),
            "-CAcreateserial", "-days", "1", "-extfile", str(extensions), "-out", str(cert),
        )  # fmt: skip
        bundle = directory / f"{name}.pem"
        bundle.write_text(cert.read_text() + key.read_text())
        return bundle


def make_authority(directory: Path, label: str) -> Authority:
    directory.mkdir()
    cert, key = directory / "ca.crt", directory / "ca.key"
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
        "-days", "1", "-subj", f"/CN={label}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return Authority(cert, key)


@pytest.fixture(scope="module")
def authorities(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Authority]:
    root = tmp_path_factory.mktemp("authorities")
    return {label: make_authority(root / label, label) for label in ("trusted", "other")}


@pytest.fixture(scope="module")
def triton() -> Iterator[FakeReplica]:
    (replica,) = start_replicas([(f"{POOL}-1", [])])
    try:
        yield replica
    finally:
        replica.stop()


@contextmanager
def tls_listener(bundle: Path, backend: FakeReplica, run_dir: Path) -> Iterator[ReplicaPorts]:
    """The NLB's TLS listeners, on loopback: TLS in with ``bundle``, plain TCP on to Triton."""
    ports = ReplicaPorts(http=free_port(), grpc=free_port(), metrics=0)
    config = run_dir / "nlb.cfg"
    config.write_text(
        "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 30s\n"
        "    timeout server 30s\n"
        + "".join(
            f"frontend {name}\n    bind 127.0.0.1:{port} ssl crt {bundle}\n"
            f"    default_backend {name}\n"
            f"backend {name}\n    server triton 127.0.0.1:{target}\n"
            for name, port, target in (
                ("http", ports.http, backend.http_port),
                ("grpc", ports.grpc, backend.grpc_port),
            )
        )
    )
    log = run_dir / "nlb.log"
    process = start_process([str(find_haproxy()), "-db", "-f", str(config)], log)
    try:
        wait_for(lambda: _accepts(ports.http) and _accepts(ports.grpc), timeout_s=10.0)
    except AssertionError as error:
        stop_group(process.pid, grace_s=2.0)
        raise AssertionError(f"stand-in NLB did not start; {log}:\n{log_tail(log)}") from error
    try:
        yield ports
    finally:
        stop_group(process.pid, grace_s=2.0)


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def gateway_files(ca_certificate: str) -> dict[str, str]:
    """The chart's ConfigMap: the private pool at weight 0, the burst pool over TLS at 100."""
    values = {
        "pools": {
            "private": {"weight": 0, "slots": 1},
            "burst": [
                {
                    "name": POOL,
                    "hostname": "nlb.elb.us-east-1.amazonaws.com",
                    "slots": 1,
                    "weight": 100,
                    "tlsServerName": SERVER_NAME,
                }
            ],
        },
        "burstTls": {"enabled": True, "caCertificate": ca_certificate},
    }
    chart = helm.Chart.load(chart_dir("spillover-gateway"))
    try:
        rendered = render(chart, values, kube_version=kube_version_floor("spillover-gateway"))
    finally:
        chart.close()
    files: dict[str, str] = rendered.one("ConfigMap")["data"]
    return files


def burst_rows(rows: list[ServerStats]) -> list[ServerStats]:
    return [row for row in rows if row.pool == POOL]


def infer_http(endpoint: str) -> tuple[int, bytes]:
    host, port = endpoint.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request(
            "POST", INFER_PATH, body=b"{}", headers={"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def infer_grpc(endpoint: str) -> bytes:
    with grpc.insecure_channel(endpoint) as channel:
        call = channel.unary_unary(GRPC_INFER)
        answer: bytes = call(GRPC_REQUEST, timeout=10)
        return answer


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_a_burst_pool_whose_certificate_the_ca_signed_serves(
    authorities: dict[str, Authority], triton: FakeReplica, tmp_path: Path, protocol: str
) -> None:
    trusted = authorities["trusted"]
    bundle = trusted.issue(tmp_path, SERVER_NAME)
    cfg = mounted(gateway_files(trusted.cert.read_text()), tmp_path)
    with (
        tls_listener(bundle, triton, tmp_path) as nlb,
        running_chart_gateway(cfg, direct(triton), tmp_path, {POOL: nlb}) as gateway,
    ):
        if protocol == "http":
            status, body = infer_http(gateway.endpoint("http"))
            assert (status, body) == (200, b'{"server": "burst_spot-1"}')
        else:
            assert infer_grpc(gateway.endpoint("grpc")) == b"burst_spot-1"


@pytest.mark.parametrize(
    ("issuer", "name"),
    [
        pytest.param("other", SERVER_NAME, id="another-ca"),
        pytest.param("trusted", "impostor.burst.spillover.internal", id="the-ca-for-another-name"),
    ],
)
def test_a_burst_pool_the_gateway_cannot_verify_gets_no_request(
    authorities: dict[str, Authority], triton: FakeReplica, tmp_path: Path, issuer: str, name: str
) -> None:
    bundle = authorities[issuer].issue(tmp_path, name)
    cfg = mounted(gateway_files(authorities["trusted"].cert.read_text()), tmp_path)

    def burst_down(rows: list[ServerStats]) -> bool:
        return all(row.status == "DOWN" for row in burst_rows(rows))

    with (
        tls_listener(bundle, triton, tmp_path) as nlb,
        running_chart_gateway(cfg, direct(triton), tmp_path, {POOL: nlb}, burst_down) as gateway,
    ):
        status, _ = infer_http(gateway.endpoint("http"))
        assert status == 503, "a request reached a load balancer whose certificate failed"
        with pytest.raises(grpc.RpcError):
            infer_grpc(gateway.endpoint("grpc"))
        log = (tmp_path / "chart-haproxy.log").read_text()
        # Layer 6 (TLS) refused the listener, not a connection or HTTP failure.
        assert "burst_spot-1 is DOWN, reason: Layer6 invalid response" in log, log[-2000:]


def direct(replica: FakeReplica) -> ReplicaPorts:
    """The private pool's servers: the fake Triton itself, in plaintext (weight 0 here)."""
    return ReplicaPorts(http=replica.http_port, grpc=replica.grpc_port, metrics=0)
