"""The gateway as a local process: write and check its config, start haproxy, stop it by PID.

haproxy runs in the foreground (``-db``: no daemon, no master process) in a
session of its own, so its PID is its process group and the stack can stop it
later from another process with nothing but the PID it recorded.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from spillover.drivers.haproxy_config import check_config_file, find_haproxy, render_config
from spillover.drivers.haproxy_runtime import GatewayUnreachableError, RuntimeApi
from spillover.drivers.haproxy_spec import GatewaySpec
from spillover.drivers.processes import (
    is_running,
    log_tail,
    may_signal_group,
    start_process,
    start_ticks,
    stop_group,
)
from spillover.errors import SpilloverError
from spillover.settings import DEFAULTS

CONFIG_FILE = "haproxy.cfg"
LOG_FILE = "haproxy.log"

_STATS_SOCKET_LINE = re.compile(r"^\s*stats socket (\S+)", re.MULTILINE)


class GatewayStartError(SpilloverError):
    """haproxy did not come up; the message carries its log tail."""


@dataclass(frozen=True)
class GatewayProcess:
    """A running gateway and where its files are."""

    pid: int
    """haproxy's PID, also its process group (record it to stop the gateway later)."""
    started: int
    """Its start time in clock ticks after boot: with pid, its identity (record it too)."""
    config_path: Path
    """The config it runs, ``<run_dir>/haproxy.cfg``."""
    log_path: Path
    """Its stdout and stderr: state changes (server DOWN/UP) and failed or retried requests."""
    socket_path: Path
    """Its runtime API socket."""

    def runtime_api(self) -> RuntimeApi:
        return RuntimeApi(self.socket_path)

    def stop(self, grace_s: float = 5.0) -> bool:
        """Stop this gateway; see ``stop_gateway``."""
        return stop_gateway(self.pid, self.started, self.socket_path, grace_s)


def start_gateway(
    spec: GatewaySpec,
    run_dir: Path,
    start_timeout_s: float = DEFAULTS.local.gateway_start_timeout_s,
) -> GatewayProcess:
    """Write, check and run the gateway's config; return once its runtime API answers."""
    gateway = launch_gateway(spec, run_dir)
    wait_for_gateway(gateway, start_timeout_s)
    return gateway


def launch_gateway(spec: GatewaySpec, run_dir: Path) -> GatewayProcess:
    """Write, check and start the gateway's config without waiting for it.

    Callers that must be able to stop the gateway after being killed record the
    returned process before they call wait_for_gateway.
    """
    binary = find_haproxy()
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    spec.socket_path.parent.mkdir(parents=True, exist_ok=True)
    _clear_stale_socket(spec.socket_path)
    config_path = run_dir / CONFIG_FILE
    config_path.write_text(render_config(spec))
    check_config_file(config_path)
    log_path = run_dir / LOG_FILE
    process = start_process([str(binary), "-db", "-f", str(config_path)], log_path)
    started = start_ticks(process.pid)
    assert started is not None  # our unreaped child: at worst a zombie, never gone
    return GatewayProcess(process.pid, started, config_path, log_path, spec.socket_path)


def wait_for_gateway(
    gateway: GatewayProcess, timeout_s: float = DEFAULTS.local.gateway_start_timeout_s
) -> None:
    """Return once the runtime API answers; stop the gateway and raise if it never does."""
    api = RuntimeApi(gateway.socket_path, timeout_s=1.0)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if not is_running(gateway.pid, gateway.started):
                raise GatewayStartError(_failure("haproxy exited", gateway))
            try:
                api.execute("show info")
                return
            except GatewayUnreachableError as error:
                if time.monotonic() >= deadline:
                    message = (
                        f"haproxy did not answer on {gateway.socket_path} within {timeout_s} s"
                    )
                    raise GatewayStartError(_failure(message, gateway)) from error
                time.sleep(0.02)
    except BaseException:
        stop_group(gateway.pid, grace_s=2.0)
        raise


def stop_gateway(
    pid: int,
    started: int | None = None,
    socket_path: Path | None = None,
    grace_s: float = 5.0,
) -> bool:
    """Stop the gateway's process group (SIGTERM, then SIGKILL) and remove its socket.

    With ``started`` (its recorded start time) only that very process is signalled;
    without it, only an haproxy process. Either way a PID reused by another program
    is left alone. Returns whether there was a process to stop; stopping a stopped
    gateway is harmless.
    """
    ours = may_signal_group(pid, started) if started is not None else _is_haproxy(pid)
    if ours and socket_path is None:
        socket_path = _socket_of_running_gateway(pid)
    stopped = ours and stop_group(pid, grace_s)
    if socket_path is not None:
        # haproxy leaves its socket behind when killed; a stale one would look alive.
        socket_path.unlink(missing_ok=True)
    return stopped


def _is_haproxy(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "haproxy"
    except OSError:
        return False


def _clear_stale_socket(socket_path: Path) -> None:
    if not socket_path.exists():
        return
    try:
        RuntimeApi(socket_path, timeout_s=0.5).execute("show info")
    except GatewayUnreachableError:
        socket_path.unlink(missing_ok=True)
        return
    raise GatewayStartError(
        f"a gateway already answers on {socket_path}; stop it before starting another"
    )


def _failure(reason: str, gateway: GatewayProcess) -> str:
    return f"{reason}; last lines of {gateway.log_path}:\n{log_tail(gateway.log_path)}"


def _socket_of_running_gateway(pid: int) -> Path | None:
    """The stats socket named in the config haproxy was started with (-f), if readable."""
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        config = Path(arguments[arguments.index("-f") + 1]).read_text()
    except (OSError, ValueError, IndexError):
        return None
    match = _STATS_SOCKET_LINE.search(config)
    return Path(match[1]) if match else None
