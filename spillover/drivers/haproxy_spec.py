"""The gateway's layout and tunables: slots, health checks, timeouts, retries, ports.

Frozen settings, validated on construction, so a config that would listen
beyond loopback or collide on a port is refused before haproxy ever sees it.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from spillover.drivers.haproxy_exposure import require_model_name
from spillover.model.contract import MODEL_NAME

HTTP_BACKEND = "triton_http"
"""Backend that carries KServe v2 REST traffic."""

GRPC_BACKEND = "triton_grpc"
"""Backend that carries gRPC (HTTP/2 cleartext) traffic."""

BACKENDS = (HTTP_BACKEND, GRPC_BACKEND)
"""Every backend lists every slot; runtime changes apply to all of them."""

HTTP_FRONTEND = "triton_http_in"
"""Frontend where clients send KServe v2 REST requests."""

GRPC_FRONTEND = "triton_grpc_in"
"""Frontend where clients send gRPC requests."""

TRAFFIC_FRONTENDS = (HTTP_FRONTEND, GRPC_FRONTEND)
"""Frontends whose requests are inference demand (the metrics frontend is not)."""

REPLICA_BACKLOG_S = 0.2
"""Work a replica may hold, in seconds of its capacity: its maxconn is capacity_rps x
this. Enough in flight for Triton to batch at full speed; beyond it a request would
wait at the replica for more than twice a 100 ms SLO, so it waits at the gateway
instead, where another replica with a free slot can take it, or it gets a 503."""

GRPC_STATUS_UNAVAILABLE = 14
"""google.rpc.Code UNAVAILABLE: what a gRPC call gets when no replica could take it
(HTTP/2 503 maps to it too, per gRPC's http-grpc-status-mapping)."""

MAX_UNIX_SOCKET_PATH = 107
"""sun_path holds 108 bytes including the terminating NUL."""

_SLOT_NAME = re.compile(r"^(?P<pool>[A-Za-z0-9_.]+(?:-[A-Za-z0-9_.]+)*)-(?P<index>[0-9]+)$")


def pool_of_server(name: str) -> str:
    """The pool of server ``<pool>-<index>``; ValueError for any other name."""
    match = _SLOT_NAME.match(name)
    if match is None:
        raise ValueError(f"server name {name!r} is not '<pool>-<index>' (e.g. 'private-0')")
    return match["pool"]


@dataclass(frozen=True)
class ServerSlot:
    """One fixed place for a replica: its ports exist in the config whether it runs or not."""

    name: str
    """HAProxy server name, ``<pool>-<index>`` (e.g. ``private-0``); the pool is its prefix."""

    pool: str
    """The pool this slot belongs to (e.g. ``private``, ``burst``)."""

    http_port: int
    """The replica's KServe v2 HTTP port; health checks of both backends go here."""

    grpc_port: int
    """The replica's gRPC (HTTP/2 cleartext) port."""

    host: str = "127.0.0.1"
    """Where the replica listens."""

    maxconn: int | None = None
    """Requests the replica is sent at once (replica_maxconn of its capacity); the rest
    wait in the backend's queue. None: no limit (a replica of unknown capacity)."""

    def __post_init__(self) -> None:
        if self.maxconn is not None and self.maxconn < 1:
            raise ValueError(f"slot {self.name} maxconn must be at least 1, got {self.maxconn}")
        match = _SLOT_NAME.match(self.name)
        if match is None or match["pool"] != self.pool:
            raise ValueError(
                f"slot name {self.name!r} must be '<pool>-<index>' with pool {self.pool!r}, "
                f"e.g. '{self.pool}-0'"
            )
        _require_port(f"slot {self.name} http_port", self.http_port)
        _require_port(f"slot {self.name} grpc_port", self.grpc_port)


@dataclass(frozen=True)
class HealthCheck:
    """Active health checks against Triton's readiness endpoint, tuned for fast local failover."""

    path: str = "/v2/health/ready"
    """Readiness endpoint: 200 only when the server and its models are ready."""

    expect_status: int = 200
    """The only status that counts as ready."""

    inter_ms: int = 500
    """Check interval while a server is steadily up."""

    fastinter_ms: int = 200
    """Check interval while a server is changing state, so a failure is confirmed quickly."""

    downinter_ms: int = 1000
    """Check interval while a server is down: it needs to be noticed coming back, not instantly."""

    rise: int = 2
    """Consecutive successes before a server is marked UP (one lucky answer is not enough)."""

    fall: int = 2
    """Consecutive failures before a server is marked DOWN by checks alone."""

    timeout_ms: int = 1000
    """A check unanswered after this long fails; readiness answers in microseconds locally."""

    error_limit: int = 1
    """Consecutive connection errors seen in live traffic that mark a server DOWN at once.

    Loopback connections fail only when the replica is gone, so one error is
    proof enough; a false alarm costs rise x fastinter to recover.
    """

    def __post_init__(self) -> None:
        _require_positive(self, ("inter_ms", "fastinter_ms", "downinter_ms", "timeout_ms"))
        _require_positive(self, ("rise", "fall", "error_limit"))

    def worst_detection_ms(self) -> int:
        """Upper bound to mark a dead server DOWN by checks alone, without any traffic.

        The next check comes within inter, the following ones fastinter apart; a
        refused connection fails a check at once, a hung server after timeout.
        """
        return self.inter_ms + (self.fall - 1) * self.fastinter_ms + self.fall * self.timeout_ms


@dataclass(frozen=True)
class Timeouts:
    """Connection and request timeouts, in milliseconds."""

    connect_ms: int = 250
    """Short: a refused or stalled connect is retried on another server instead of waited
    on. HAProxy also waits min(this, 1 s) before a retry when a backend has fewer than two
    active servers: at 1 s, requests in flight when the private pool died waited a whole
    second for the one warm burst replica (the failover drill's first p99 window)."""

    client_ms: int = 30000
    """Idle client side; kept-alive load-generator connections stay open this long."""

    server_ms: int = 30000
    """Longest wait for a replica's answer; a hung replica costs this much, then a retry."""

    http_request_ms: int = 10000
    """Longest time a client may take to send its request (headers and buffered body)."""

    queue_ms: int = 1000
    """Longest wait in the gateway's queue for a replica with a free slot (every replica
    at its maxconn: a reserve smaller than the demand it got). Then a 503 with
    Retry-After: a request that waited a second has broken a 100 ms SLO tenfold, and a
    client told to come back does better than one left to time out."""

    def __post_init__(self) -> None:
        _require_positive(self, tuple(vars(self)))


@dataclass(frozen=True)
class RetryPolicy:
    """How a failed attempt becomes another attempt on another server."""

    retries: int = 6
    """Attempts after the first. ``option redispatch 1`` sends every retry to another
    server, but by weight: when a whole pool dies at once (the failover drill kills both
    private replicas) retries keep landing on its servers until each is marked down, and
    with 3 one request in about 7,000 ran out of attempts before reaching burst."""

    retry_on: tuple[str, ...] = (
        "conn-failure",
        "empty-response",
        "junk-response",
        "response-timeout",
    )
    """Failure classes retried. Inference is idempotent, so retrying after the request was
    sent (empty, junk or timed-out response) is safe; it only needs the request buffered,
    which HAProxy does for requests that fit in tune.bufsize (16 kB by default)."""


@dataclass(frozen=True)
class GatewaySpec:
    """Everything the gateway's config is made from."""

    http_port: int
    """Where clients send KServe v2 REST requests."""

    grpc_port: int
    """Where clients send gRPC requests (HTTP/2 cleartext)."""

    metrics_port: int
    """Prometheus exporter (``/metrics``) and the read-only stats page (``/stats``)."""

    socket_path: Path
    """Runtime API socket (mode 600, admin level): weights, drain, maintenance."""

    slots: tuple[ServerSlot, ...]
    """Every slot of every pool, in the order they appear in each backend."""

    health: HealthCheck = field(default_factory=HealthCheck)
    """Active health checks and passive error observation."""

    timeouts: Timeouts = field(default_factory=Timeouts)
    """Connection and request timeouts."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    """Retries and redispatch."""

    served_model: str = MODEL_NAME
    """The one model clients may infer on and read; every other model is refused (403)."""

    bind_host: str = "127.0.0.1"
    """Where the frontends listen; must be loopback in local mode."""

    runtime_api_port: int | None = None
    """Also serve the runtime API over TCP on bind_host:port (admin level, no
    authentication, hence loopback only); None serves it on the unix socket alone."""

    retry_after_s: int = 1
    """Retry-After of a 503 (no replica could take the request in time): one controller
    tick, after which weights or replicas may have changed."""

    maxconn: int = 4096
    """Concurrent connections HAProxy accepts; beyond it clients wait in the kernel backlog."""

    nbthread: int = 1
    """HAProxy threads. Measured on the 2-core machine with stand-in replicas: one thread
    spends 70-80 us of CPU per request (about 30% of a core at 4,000 req/s, where the
    clients and replicas had already saturated both cores) and 2 threads gave the same
    throughput within noise. CPU Triton replicas serve hundreds of req/s, so one thread
    needs a few % of a core and a second would only compete with Triton for the CPU."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "slots", tuple(self.slots))
        object.__setattr__(self, "socket_path", Path(self.socket_path))
        _require_loopback(self.bind_host)
        require_model_name(self.served_model)
        _require_positive(self, ("maxconn", "nbthread", "retry_after_s"))
        for label, port in self._frontend_ports().items():
            _require_port(label, port)
        _require_distinct_ports(self)
        _require_unique_slot_names(self.slots)
        _require_socket_path(self.socket_path)

    def _frontend_ports(self) -> dict[str, int]:
        ports = {
            "http_port": self.http_port,
            "grpc_port": self.grpc_port,
            "metrics_port": self.metrics_port,
        }
        if self.runtime_api_port is not None:
            ports["runtime_api_port"] = self.runtime_api_port
        return ports


def replica_maxconn(capacity_rps: float | None) -> int | None:
    """Requests one replica of this capacity is sent at once (REPLICA_BACKLOG_S of work);
    None (no limit) when its capacity is unknown."""
    if capacity_rps is None:
        return None
    return max(1, math.ceil(capacity_rps * REPLICA_BACKLOG_S))


def _require_port(label: str, port: int) -> None:
    if not 1 <= port <= 65535:
        raise ValueError(f"{label} must be in 1..65535, got {port}")


def _require_positive(settings: object, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(settings, name)
        if value < 1:
            raise ValueError(f"{type(settings).__name__}.{name} must be at least 1, got {value}")


def _require_loopback(host: str) -> None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise ValueError(
            f"bind_host must be a loopback IP address (127.0.0.0/8 or ::1), got {host!r}: "
            "in local mode nothing may listen beyond this machine"
        )


def _require_distinct_ports(spec: GatewaySpec) -> None:
    owners: dict[tuple[str, int], str] = {}
    claims = [((spec.bind_host, p), label) for label, p in spec._frontend_ports().items()]
    for slot in spec.slots:
        claims.append(((slot.host, slot.http_port), f"slot {slot.name} http_port"))
        claims.append(((slot.host, slot.grpc_port), f"slot {slot.name} grpc_port"))
    for address, label in claims:
        if address in owners:
            raise ValueError(f"{label} reuses port {address[1]} of {owners[address]}")
        owners[address] = label


def _require_unique_slot_names(slots: tuple[ServerSlot, ...]) -> None:
    if not slots:
        raise ValueError("a gateway needs at least one slot")
    names = [slot.name for slot in slots]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"slot names must be unique, repeated: {', '.join(duplicates)}")


def _require_socket_path(path: Path) -> None:
    if not path.is_absolute():
        raise ValueError(f"socket_path must be absolute, got {str(path)!r}")
    if len(str(path).encode()) > MAX_UNIX_SOCKET_PATH:
        raise ValueError(
            f"socket_path is {len(str(path).encode())} bytes, unix sockets allow at most "
            f"{MAX_UNIX_SOCKET_PATH}: choose a shorter run directory ({str(path)!r})"
        )
