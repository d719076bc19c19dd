"""A client for the gateway's HAProxy runtime API: stats, weights, enable, drain, maintenance.

One command per connection (HAProxy's non-interactive mode answers and closes),
each with a timeout, over the unix stats socket or over TCP (``host:port``) when
the gateway runs in another pod. An answer that is an error ("Unknown command",
"No such server.") raises instead of being returned.
"""

from __future__ import annotations

import csv
import re
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from spillover.drivers.haproxy_spec import BACKENDS, HTTP_BACKEND, TRAFFIC_FRONTENDS, pool_of_server
from spillover.drivers.haproxy_weights import spread_pool_weights
from spillover.errors import PermanentError, SpilloverError, TemporaryError
from spillover.settings import DEFAULTS

ServerState = Literal["UP", "DOWN", "MAINT", "DRAIN", "NOLB"]
"""Where a server stands: UP takes traffic if its weight allows; the others take none."""


_TCP_ADDRESS = re.compile(
    r"^(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.-]+)):(?P<port>[0-9]+)$"
)
"""``host:port`` or ``[ipv6]:port``; anything else is a unix socket path."""

RESPONSE_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "other")


class RuntimeApiError(SpilloverError):
    """The runtime API did not do what was asked."""


class GatewayUnreachableError(RuntimeApiError, TemporaryError):
    """Nothing answers on the socket: start the gateway (or wait for it), then retry."""

    def __init__(self, message: str, delay: float = 0.5) -> None:
        # Half a second: a gateway being (re)started answers within it, and a retry
        # still fits in the tick.
        super().__init__(message, delay)


class RuntimeCommandError(RuntimeApiError, PermanentError):
    """HAProxy refused a command (unknown command, no such server, bad value): don't retry."""

    def __init__(self, command: str, answer: str) -> None:
        super().__init__(f"haproxy refused {command!r}: {answer.strip()}")
        self.command = command
        self.answer = answer.strip()


class GatewayWaitTimeoutError(RuntimeApiError, TimeoutError):
    """A server did not reach the awaited state in time; the message says where it stands."""


@dataclass(frozen=True)
class ServerStats:
    """One server of one backend, from ``show stat``."""

    backend: str
    server: str
    pool: str
    status: ServerState
    """Normalized state; ``UP 1/2`` (failing, still serving) is UP, ``DOWN 1/2`` is DOWN."""
    raw_status: str
    """HAProxy's own status text, e.g. ``UP 1/2`` or ``MAINT (via)``."""
    weight: int
    current_sessions: int
    total_sessions: int
    responses_by_class: dict[str, int]
    """HTTP responses by class: ``1xx`` .. ``5xx`` and ``other``."""
    check_status: str
    """Last health check result, e.g. ``L7OK``, ``L4CON`` (refused), ``L7STS`` (bad status),
    ``INI`` (none yet)."""
    seconds_since_change: int
    """Seconds since the server last changed state."""
    retries: int
    """Requests retried on this server (another attempt went elsewhere or here again)."""
    redispatches: int
    """Requests moved from this server to another one."""

    @property
    def ready(self) -> bool:
        """UP, confirmed by its latest health check, not in maintenance or drain.

        ``UP 1/2`` is not ready: HAProxy shows it for a slot just taken out of
        maintenance (assumed up until its first check) and for one that failed a check.
        """
        return self.raw_status in ("UP", "no check")

    @property
    def responses_total(self) -> int:
        """Responses this server gave (or HAProxy gave on its behalf), every class."""
        return sum(self.responses_by_class.values())


@dataclass(frozen=True)
class FrontendStats:
    """One frontend (where clients connect), from ``show stat``."""

    name: str
    requests_total: int
    """HTTP requests received since the gateway started (``req_tot``): every HTTP/1
    request and every HTTP/2 stream, whether a server answered it or not."""
    connections_total: int
    """Client connections accepted (``stot``); one kept-alive connection carries many
    requests."""
    current_connections: int
    responses_by_class: dict[str, int]
    """Responses sent to clients by class, including HAProxy's own (503 when no server
    is up, 504 on timeout)."""


@dataclass(frozen=True)
class GatewayStats:
    """One ``show stat`` answer: the traffic frontends and every server slot."""

    frontends: tuple[FrontendStats, ...]
    """The frontends that carry inference traffic (HTTP and gRPC), not the metrics one."""
    servers: tuple[ServerStats, ...]
    """Every slot of every gateway backend."""

    @property
    def requests_total(self) -> int:
        """Inference requests received over every protocol since the gateway started."""
        return sum(frontend.requests_total for frontend in self.frontends)

    def pool_totals(self) -> dict[str, tuple[int, int]]:
        """Per pool, cumulative (responses, 5xx) over every backend's rows: HTTP and gRPC
        traffic both count. Counters restart at 0 with the gateway."""
        totals: dict[str, tuple[int, int]] = {}
        for row in self.servers:
            responses, errors = totals.get(row.pool, (0, 0))
            totals[row.pool] = (
                responses + row.responses_total,
                errors + row.responses_by_class["5xx"],
            )
        return totals


class RuntimeApi:
    """The runtime API of one running gateway.

    ``address`` is the stats socket's path, or ``host:port`` (``[::1]:port``) for a
    ``stats socket`` bound to a TCP address.
    """

    def __init__(self, address: Path | str, timeout_s: float = 2.0) -> None:
        self.tcp_address = _tcp_address(address)
        self.address = str(address)
        self.timeout_s = timeout_s

    def execute(self, command: str) -> str:
        """Send one command and return HAProxy's answer; raise if it does not know the command."""
        answer = self._exchange(command)
        if answer.startswith("Unknown command"):
            raise RuntimeCommandError(command, answer.split("\n", 1)[0])
        return answer

    def _exchange(self, command: str) -> str:
        try:
            with self._connect() as connection:
                connection.sendall(command.encode() + b"\n")
                return _read_to_end(connection)
        except OSError as error:  # missing, refused, no permission, timed out
            raise GatewayUnreachableError(
                f"no gateway answers on {self.address} ({error}); is it running?"
            ) from error

    def _connect(self) -> socket.socket:
        if self.tcp_address is not None:
            return socket.create_connection(self.tcp_address, timeout=self.timeout_s)
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            connection.settimeout(self.timeout_s)
            connection.connect(self.address)
        except OSError:
            connection.close()
            raise
        return connection

    def stats(self) -> GatewayStats:
        """Traffic frontends and every server slot, from one ``show stat``."""
        command = "show stat"
        answer = self.execute(command)
        if not answer.startswith("# pxname,"):
            raise RuntimeCommandError(command, answer)
        rows = list(csv.DictReader(answer[2:].splitlines()))
        return GatewayStats(
            frontends=tuple(_frontend_stats(row) for row in rows if _is_traffic_frontend(row)),
            servers=tuple(_server_stats(row) for row in rows if _is_gateway_server(row)),
        )

    def server_stats(self) -> list[ServerStats]:
        """Every slot of every gateway backend."""
        return list(self.stats().servers)

    def frontend_stats(self) -> list[FrontendStats]:
        """The frontends that carry inference traffic (HTTP and gRPC)."""
        return list(self.stats().frontends)

    def set_pool_weights(self, shares: Mapping[str, float]) -> dict[str, int]:
        """Give each pool its share of traffic over its ready servers; return weights applied.

        ``{"private": 80, "burst": 20}``: relative shares, pools left out get 0.
        Readiness is read now; call again when servers come up or go down.
        """
        stats = self.server_stats()
        servers_by_pool: dict[str, list[str]] = {}
        for row in stats:
            if row.backend == HTTP_BACKEND:
                servers_by_pool.setdefault(row.pool, []).append(row.server)
        weights = spread_pool_weights(shares, servers_by_pool, _ready_everywhere(stats))
        for server, weight in weights.items():
            self._on_every_backend(server, f"set weight {{backend}}/{server} {weight}")
        return weights

    def enable_server(self, name: str) -> None:
        """Take a slot out of maintenance or drain, with its last weight.

        HAProxy treats it as up at once and confirms with its next check (within
        inter), so enable only a replica that reports ready; ``wait_ready`` waits
        for that confirmation, then ``set_pool_weights`` gives it its share.
        """
        self._on_every_backend(name, f"set server {{backend}}/{name} state ready")

    def drain_server(self, name: str) -> None:
        """Send a slot no new requests; the ones in flight finish."""
        self._on_every_backend(name, f"set server {{backend}}/{name} state drain")

    def disable_server(self, name: str) -> None:
        """Put a slot in maintenance (MAINT): no traffic, no health checks."""
        self._on_every_backend(name, f"set server {{backend}}/{name} state maint")

    def ready_servers(self, pool: str | None = None) -> list[str]:
        """Servers ready on every backend, of one pool or of all."""
        stats = self.server_stats()
        ready = _ready_everywhere(stats)
        return [
            row.server
            for row in stats
            if row.backend == HTTP_BACKEND
            and (pool is None or row.pool == pool)
            and row.server in ready
        ]

    def wait_ready(self, name: str, timeout: float) -> None:
        """Wait until a health check on every backend has confirmed ``name`` is up."""
        self._wait(name, timeout, "ready", lambda rows: all(row.ready for row in rows))

    def wait_drained(self, name: str, timeout: float) -> None:
        """Wait until ``name`` has no request in flight on any backend."""
        self._wait(
            name, timeout, "drained", lambda rows: all(row.current_sessions == 0 for row in rows)
        )

    def _on_every_backend(self, server: str, template: str) -> None:
        pool_of_server(server)  # a name with spaces or newlines would smuggle in a command
        for backend in BACKENDS:
            command = template.format(backend=backend)
            answer = self.execute(command)
            if answer.strip():
                raise RuntimeCommandError(command, answer)

    def _wait(
        self,
        name: str,
        timeout: float,
        awaited: str,
        reached: Callable[[list[ServerStats]], bool],
    ) -> None:
        deadline = time.monotonic() + timeout
        while True:
            rows = [row for row in self.server_stats() if row.server == name]
            if not rows:
                raise RuntimeCommandError(f"wait until {name} {awaited}", "No such server.")
            if reached(rows):
                return
            if time.monotonic() >= deadline:
                raise GatewayWaitTimeoutError(
                    f"{name} not {awaited} after {timeout:.1f} s: {_describe(rows)}"
                )
            time.sleep(DEFAULTS.local.gateway_poll_s)


def _tcp_address(address: Path | str) -> tuple[str, int] | None:
    if isinstance(address, Path):
        return None
    match = _TCP_ADDRESS.match(address)
    if match is None:
        return None
    return (match["ipv6"] or match["host"], int(match["port"]))


def _read_to_end(connection: socket.socket) -> str:
    chunks = []
    while chunk := connection.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def _is_gateway_server(row: Mapping[str, str]) -> bool:
    return row["pxname"] in BACKENDS and row["svname"] not in ("FRONTEND", "BACKEND")


def _is_traffic_frontend(row: Mapping[str, str]) -> bool:
    return row["pxname"] in TRAFFIC_FRONTENDS and row["svname"] == "FRONTEND"


def _frontend_stats(row: Mapping[str, str]) -> FrontendStats:
    return FrontendStats(
        name=row["pxname"],
        requests_total=_int(row, "req_tot"),
        connections_total=_int(row, "stot"),
        current_connections=_int(row, "scur"),
        responses_by_class=_responses_by_class(row),
    )


def _responses_by_class(row: Mapping[str, str]) -> dict[str, int]:
    return {label: _int(row, f"hrsp_{label}") for label in RESPONSE_CLASSES}


def _server_stats(row: Mapping[str, str]) -> ServerStats:
    return ServerStats(
        backend=row["pxname"],
        server=row["svname"],
        pool=pool_of_server(row["svname"]),
        status=_normalize_status(row["status"]),
        raw_status=row["status"],
        weight=_int(row, "weight"),
        current_sessions=_int(row, "scur"),
        total_sessions=_int(row, "stot"),
        responses_by_class=_responses_by_class(row),
        check_status=(row.get("check_status") or "").removeprefix("* "),
        seconds_since_change=_int(row, "lastchg"),
        retries=_int(row, "wretr"),
        redispatches=_int(row, "wredis"),
    )


_STATUS_BY_FIRST_WORD: dict[str, ServerState] = {
    "UP": "UP",
    "NO": "UP",  # "no check": serving, health checks off
    "DOWN": "DOWN",
    "MAINT": "MAINT",
    "DRAIN": "DRAIN",
    "NOLB": "NOLB",
}


def _normalize_status(raw: str) -> ServerState:
    # HAProxy also says "UP 1/2" (failing), "DOWN 1/2" (recovering), "MAINT (via)".
    # Anything unforeseen counts as DOWN: never route to a state we don't understand.
    return _STATUS_BY_FIRST_WORD.get(raw.split(" ", 1)[0].upper(), "DOWN")


def _int(row: Mapping[str, str], field: str) -> int:
    value = row.get(field) or "0"
    return int(value)


def _ready_everywhere(stats: list[ServerStats]) -> set[str]:
    unready = {row.server for row in stats if not row.ready}
    return {row.server for row in stats} - unready


def _describe(rows: list[ServerStats]) -> str:
    return ", ".join(
        f"{row.backend} {row.raw_status} (check {row.check_status or '-'}, "
        f"{row.current_sessions} in flight)"
        for row in rows
    )
