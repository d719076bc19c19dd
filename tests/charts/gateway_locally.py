"""Run the gateway chart's rendered haproxy.cfg on this machine, in front of a local replica.

Only what cannot work outside a cluster changes: the listeners move from every interface to
free loopback ports, and each server-template's DNS name becomes the local replica's address.
The frontends (the allow-list, its refusals) and the backends' checks and retries run as
rendered, so a request test against them tests the chart's own rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from spillover.drivers.haproxy_config import find_haproxy
from spillover.drivers.haproxy_runtime import GatewayUnreachableError, RuntimeApi, ServerStats
from spillover.drivers.processes import log_tail, start_process, stop_group
from spillover.drivers.tritonserver import ReplicaPorts
from tests.drivers.gateway_harness import free_port, wait_for

CHART_LISTENERS = {
    "http": ("bind :8000", "bind 127.0.0.1:{port}"),
    "grpc": ("bind :8001", "bind 127.0.0.1:{port}"),
    "metrics": ("bind :8405", "bind 127.0.0.1:{port}"),
    "stats": ("bind 127.0.0.1:8404", "bind 127.0.0.1:{port}"),
    "runtime": ("stats socket ipv4@0.0.0.0:9999", "stats socket ipv4@127.0.0.1:{port}"),
}
"""Each listener the chart renders (as it renders it) and its loopback stand-in."""

CHART_CONFIG_DIR = "/usr/local/etc/haproxy/"
"""Where the chart's Deployment mounts its ConfigMap (haproxy.cfg and burst-ca.crt)."""

_SERVER_TEMPLATE = re.compile(
    r"^(?P<head>\s*server-template (?P<prefix>\S+)) \d+ \S+:(?P<port>8000|8001)\b(?P<rest>.*)$",
    re.M,
)
_READY_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ChartGateway:
    """The chart's gateway running locally: where its frontends and runtime API listen."""

    ports: dict[str, int]
    """Local port of each listener in CHART_LISTENERS."""

    def endpoint(self, listener: str) -> str:
        return f"127.0.0.1:{self.ports[listener]}"


def localized(
    cfg: str,
    ports: dict[str, int],
    replica: ReplicaPorts,
    pool_replicas: Mapping[str, ReplicaPorts] | None = None,
) -> str:
    """``cfg`` with loopback listeners and one server per pool: at ``pool_replicas[pool]``'s
    ports where given (a stand-in load balancer), else at ``replica``'s."""
    for listener, (line, local) in CHART_LISTENERS.items():
        assert line in cfg, f"the chart no longer renders {line!r}: update CHART_LISTENERS"
        cfg = cfg.replace(line, local.format(port=ports[listener]))

    def local_server(match: re.Match[str]) -> str:
        target = (pool_replicas or {}).get(match["prefix"].removesuffix("-"), replica)
        port = {"8000": target.http, "8001": target.grpc}[match["port"]]
        # The health checks' own port: the target's HTTP port, not Triton's 8000.
        rest = match["rest"].replace("check port 8000", f"check port {target.http}")
        return f"{match['head']} 1 127.0.0.1:{port}{rest}"

    cfg, count = _SERVER_TEMPLATE.subn(local_server, cfg)
    assert count >= 2, "the chart no longer renders a server-template per backend"
    return cfg


def mounted(files: dict[str, str], directory: Path) -> str:
    """The ConfigMap's ``files`` written to ``directory``, as the pod mounts them; returns its
    haproxy.cfg reading them from there."""
    for name, text in files.items():
        (directory / name).write_text(text)
    return files["haproxy.cfg"].replace(CHART_CONFIG_DIR, f"{directory}/")


@contextmanager
def running_chart_gateway(
    cfg: str,
    replica: ReplicaPorts,
    run_dir: Path,
    pool_replicas: Mapping[str, ReplicaPorts] | None = None,
    ready: Callable[[list[ServerStats]], bool] | None = None,
) -> Iterator[ChartGateway]:
    """Run the localized ``cfg``; yield once ``ready`` holds for its servers (by default: all
    UP); stop it by its PID after."""
    gateway = ChartGateway({listener: free_port() for listener in CHART_LISTENERS})
    config = run_dir / "chart-haproxy.cfg"
    config.write_text(localized(cfg, gateway.ports, replica, pool_replicas))
    log = run_dir / "chart-haproxy.log"
    process = start_process([str(find_haproxy()), "-db", "-f", str(config)], log)
    try:
        api = RuntimeApi(gateway.endpoint("runtime"), timeout_s=1.0)
        try:
            wait_for(
                lambda: _servers_are(api, ready or _all_up),
                timeout_s=_READY_TIMEOUT_S,
                interval_s=0.1,
            )
        except AssertionError as error:
            raise AssertionError(f"chart gateway not ready; {log}:\n{log_tail(log)}") from error
        yield gateway
    finally:
        stop_group(process.pid, grace_s=2.0)


def _servers_are(api: RuntimeApi, ready: Callable[[list[ServerStats]], bool]) -> bool:
    try:
        rows = api.server_stats()
    except GatewayUnreachableError:
        return False
    return bool(rows) and ready(rows)


def _all_up(rows: list[ServerStats]) -> bool:
    return all(row.status == "UP" for row in rows)
