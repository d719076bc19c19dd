"""The gateway's settings, its rendered config as haproxy itself judges it, and weight spreading."""

from __future__ import annotations

from pathlib import Path

import pytest

from spillover.drivers import haproxy
from spillover.drivers.haproxy_spec import MAX_UNIX_SOCKET_PATH

SLOTS = (
    haproxy.ServerSlot("private-0", "private", 9100, 9101),
    haproxy.ServerSlot("private-1", "private", 9110, 9111),
    haproxy.ServerSlot("burst-0", "burst", 9200, 9201),
)


def spec(**changes: object) -> haproxy.GatewaySpec:
    fields: dict[str, object] = {
        "http_port": 9000,
        "grpc_port": 9001,
        "metrics_port": 9002,
        "socket_path": Path("/tmp/spillover-test/haproxy.sock"),
        "slots": SLOTS,
    }
    fields.update(changes)
    return haproxy.GatewaySpec(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("bind_host", ["127.0.0.1", "127.0.0.2", "::1"], ids=["v4", "v4-net", "v6"])
@pytest.mark.parametrize("runtime_api_port", [None, 9003], ids=["unix-api", "tcp-api-too"])
def test_rendered_config_passes_haproxy_check_without_warnings(
    bind_host: str, runtime_api_port: int | None
) -> None:
    rendered = haproxy.render_config(spec(bind_host=bind_host, runtime_api_port=runtime_api_port))
    assert haproxy.check_config(rendered) == []


@pytest.mark.parametrize(
    ("bind_host", "line"),
    [("127.0.0.1", "stats socket 127.0.0.1:9003 level admin"), ("::1", "stats socket [::1]:9003")],
    ids=["v4", "v6"],
)
def test_tcp_runtime_api_listens_on_the_loopback_bind_host_only(bind_host: str, line: str) -> None:
    text = haproxy.render_config(spec(bind_host=bind_host, runtime_api_port=9003))
    sockets = [row.strip() for row in text.splitlines() if row.strip().startswith("stats socket")]
    assert sockets[0].startswith("stats socket /tmp/spillover-test/haproxy.sock ")
    assert sockets[1].startswith(line)


def test_config_lists_every_slot_in_both_backends_in_maintenance() -> None:
    text = haproxy.render_config(spec())
    for slot in SLOTS:
        assert f"server {slot.name} 127.0.0.1:{slot.http_port} disabled" in text
        assert (
            f"server {slot.name} 127.0.0.1:{slot.grpc_port} proto h2"
            f" check port {slot.http_port} check-proto h1 disabled"
        ) in text


def test_a_replica_of_known_capacity_is_capped_and_overload_gets_503_with_retry_after() -> None:
    capped = (
        haproxy.ServerSlot("private-0", "private", 9100, 9101, maxconn=60),
        haproxy.ServerSlot("burst-0", "burst", 9200, 9201),
    )
    text = haproxy.render_config(spec(slots=capped, retry_after_s=3))
    assert haproxy.check_config(text) == []
    lines = [line.strip() for line in text.splitlines()]
    assert "server private-0 127.0.0.1:9100 maxconn 60 disabled" in lines
    assert "server burst-0 127.0.0.1:9200 disabled" in lines  # unknown capacity: no cap
    assert any(line.endswith("check-proto h1 maxconn 60 disabled") for line in lines)
    assert "timeout queue 1000ms" in lines
    http, grpc = [line for line in lines if line.startswith("http-error status 503")]
    assert http.endswith("hdr retry-after 3") and "application/json" in http
    assert "hdr grpc-status 14" in grpc and grpc.endswith("hdr retry-after 3")


@pytest.mark.parametrize(
    ("capacity_rps", "maxconn"),
    [(300, 60), (200, 40), (2, 1), (None, None)],
    ids=["private-300", "burst-200", "tiny-at-least-1", "unknown-no-cap"],
)
def test_replica_maxconn_is_a_fifth_of_a_second_of_capacity(capacity_rps, maxconn) -> None:
    assert haproxy.replica_maxconn(capacity_rps) == maxconn


def test_a_slot_maxconn_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="slot private-0 maxconn must be at least 1, got 0"):
        haproxy.ServerSlot("private-0", "private", 9100, 9101, maxconn=0)


def test_check_config_raises_with_haproxys_own_message() -> None:
    broken = haproxy.render_config(spec()).replace(
        "    balance roundrobin", "    balance sideways", 1
    )
    with pytest.raises(haproxy.GatewayConfigError, match="balance only supports"):
        haproxy.check_config(broken)


@pytest.mark.parametrize(
    "bind_host",
    ["0.0.0.0", "::", "192.168.1.20", "10.0.0.1", "localhost", ""],
    ids=["any-v4", "any-v6", "lan", "private-net", "hostname", "empty"],
)
def test_non_loopback_bind_is_refused(bind_host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        spec(bind_host=bind_host)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"grpc_port": 9000}, "reuses port 9000"),
        ({"metrics_port": 9101}, "reuses port 9101"),
        ({"http_port": 70000}, "1..65535"),
        ({"runtime_api_port": 9002}, "reuses port 9002"),
        ({"slots": ()}, "at least one slot"),
        ({"slots": SLOTS + (haproxy.ServerSlot("burst-0", "burst", 9300, 9301),)}, "unique"),
        ({"socket_path": Path("relative.sock")}, "absolute"),
        ({"socket_path": Path("/tmp/" + "d" * MAX_UNIX_SOCKET_PATH + "/s.sock")}, "shorter"),
    ],
    ids=[
        "frontend-port-twice",
        "metrics-on-a-slot-port",
        "port-out-of-range",
        "runtime-api-on-the-metrics-port",
        "no-slots",
        "duplicate-slot",
        "relative-socket",
        "socket-path-too-long",
    ],
)
def test_inconsistent_spec_is_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        spec(**changes)


@pytest.mark.parametrize(
    ("name", "pool"),
    [("private", "private"), ("burst-0", "private"), ("private-0\nshutdown", "private")],
    ids=["no-index", "other-pool", "command-smuggling"],
)
def test_slot_name_must_be_pool_dash_index(name: str, pool: str) -> None:
    with pytest.raises(ValueError, match="<pool>-<index>"):
        haproxy.ServerSlot(name, pool, 9100, 9101)


def test_pool_names_may_contain_dashes() -> None:
    assert haproxy.pool_of_server("burst-spot-3") == "burst-spot"


def test_missing_haproxy_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda *args, **kwargs: None)
    with pytest.raises(haproxy.HaproxyNotFoundError, match="apt-get install haproxy"):
        haproxy.find_haproxy()


POOLS = {"private": ["private-0", "private-1", "private-2"], "burst": ["burst-0", "burst-1"]}


@pytest.mark.parametrize(
    ("shares", "ready", "expected"),
    [
        (
            {"private": 80, "burst": 20},
            {"private-0", "private-1", "burst-0"},
            {"private-0": 256, "private-1": 256, "private-2": 0, "burst-0": 128, "burst-1": 0},
        ),
        (
            {"private": 80, "burst": 20},
            {"private-0", "burst-0", "burst-1"},
            {"private-0": 256, "private-1": 0, "private-2": 0, "burst-0": 32, "burst-1": 32},
        ),
        (
            {"private": 1},
            {"private-0", "burst-0"},
            {"private-0": 256, "private-1": 0, "private-2": 0, "burst-0": 0, "burst-1": 0},
        ),
        (
            {"private": 9999, "burst": 1},
            {"private-0", "burst-0"},
            {"private-0": 256, "private-1": 0, "private-2": 0, "burst-0": 1, "burst-1": 0},
        ),
        (
            {"private": 50, "burst": 50},
            {"burst-0"},
            {"private-0": 0, "private-1": 0, "private-2": 0, "burst-0": 256, "burst-1": 0},
        ),
    ],
    ids=[
        "80-20-over-2-and-1",
        "80-20-over-1-and-2",
        "omitted-pool-gets-nothing",
        "tiny-share-never-rounds-to-zero",
        "pool-without-ready-servers",
    ],
)
def test_spread_pool_weights(
    shares: dict[str, float], ready: set[str], expected: dict[str, int]
) -> None:
    assert haproxy.spread_pool_weights(shares, POOLS, ready) == expected


@pytest.mark.parametrize(
    ("shares", "message"),
    [
        ({"private": 80, "cloud": 20}, "unknown pool.*cloud"),
        ({"private": -5, "burst": 20}, "private=-5"),
        ({"private": float("nan")}, "private=nan"),
        ({"private": 0, "burst": 0}, "all pool shares are zero"),
        ({}, "all pool shares are zero"),
    ],
    ids=["unknown-pool", "negative", "not-a-number", "all-zero", "empty"],
)
def test_invalid_shares_are_refused_by_name(shares: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        haproxy.spread_pool_weights(shares, POOLS, {"private-0"})
