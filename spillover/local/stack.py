"""The local stack's commands: pools of real Triton replicas on 127.0.0.1 behind a real
HAProxy, brought up, scaled, routed and torn down by `spillover local ...`.

Each local replica stands for one GPU replica of its pool. These commands wait for
each step (a replica ready and in rotation, a leaving one drained and stopped); how
replicas run, and the controller's non-blocking scale, live in
`spillover.drivers.local`.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from spillover.drivers import haproxy
from spillover.drivers.local.converge import Converger
from spillover.drivers.local.errors import StackError
from spillover.drivers.local.layout import LocalLayout
from spillover.drivers.local.replicas import ReplicaProcesses
from spillover.drivers.local.state import ReplicaRecord, RunDir, StackState
from spillover.drivers.processes import (
    is_running,
    may_signal_group,
    start_process,
    start_ticks,
    stop_groups,
)
from spillover.drivers.tritonserver import ReplicaPorts, is_ready, prepare_model_repository
from spillover.settings import DEFAULTS, LocalSettings

logger = logging.getLogger(__name__)


def _describe(shares: dict[str, int]) -> str:
    return " ".join(f"{pool}={share}" for pool, share in shares.items())


@dataclass(frozen=True)
class ReplicaStatus:
    """One row of `spillover local status`."""

    pool: str
    replica: str
    ports: ReplicaPorts
    pid: int | None
    running: bool
    ready: bool
    gateway_state: str
    weight: int | None
    interrupt_at: float | None = None
    """When its interruption notice runs out (epoch seconds); None: no notice."""


class LocalStack:
    """Commands on one run directory's stack; every change holds the run-dir lock."""

    def __init__(self, run_dir: Path, settings: LocalSettings = DEFAULTS.local) -> None:
        self.run_dir = RunDir(run_dir)
        self.gateway = haproxy.RuntimeApi(self.run_dir.gateway_socket)
        self.replica_processes = ReplicaProcesses(self.run_dir, self.gateway, settings)
        self.converger = Converger(self.replica_processes)
        """Interruption notices, and free slots for `scale`, as the controller's scale
        has them."""

    # --- commands ---------------------------------------------------------------

    def up(
        self,
        layout: LocalLayout,
        model_onnx: Path,
        ready_timeout: float = DEFAULTS.local.ready_timeout_s,
        model_instances: int = 1,
        model_threads: int = 1,
    ) -> None:
        """Start the gateway and each pool's initial replicas; on failure stop them all.

        model_instances and model_threads: Triton model instances per replica and ONNX
        Runtime threads per instance (a replica stands for one GPU).
        """
        with self.run_dir.locked():
            previous = self.run_dir.load()
            if previous is not None and self._anything_running(previous):
                raise StackError(
                    f"a local stack is already running from {self.run_dir.path}; "
                    f"run `spillover local --run-dir {self.run_dir.path} down` first"
                )
            prepare_model_repository(
                self.run_dir.path / "model_repo", model_onnx, model_instances, model_threads
            )
            state = StackState.new(layout)
            self.run_dir.save(state)
            try:
                gateway = haproxy.launch_gateway(self._gateway_spec(layout), self.run_dir.path)
                state.gateway_pid, state.gateway_started = gateway.pid, gateway.started
                self.run_dir.save(state)  # before waiting: `down` must find it if we are killed
                haproxy.wait_for_gateway(gateway)
                for pool in layout.pools:
                    self.replica_processes.start(
                        state, layout.pool_slots(pool.name)[: pool.initial_replicas]
                    )
                self.replica_processes.wait_ready_and_join(
                    state, list(state.replicas.values()), ready_timeout
                )
                self._apply_weights(state)
            except BaseException:
                self._stop_everything(state)
                raise

    def scale(
        self, pool: str, replicas: int, ready_timeout: float = DEFAULTS.local.ready_timeout_s
    ) -> None:
        """Bring a pool to `replicas` live ones, waiting for each step (the command line's
        scale): dead replicas are replaced, new ones join when ready, removed ones leave
        drained. A leaving replica (an interruption notice, or taken out by `converge`)
        counts as gone already."""
        with self.run_dir.locked():
            state = self.run_dir.require()
            slots = state.layout.slots_to_scale(pool, replicas)
            self.replica_processes.reconcile(state, pool)
            self.replica_processes.retire_noticed(state, pool)
            running = state.counted(pool)
            if replicas > len(running):
                started = self.replica_processes.start(
                    state,
                    self.converger.free_slots(state, pool, slots, replicas - len(running)),
                )
                try:
                    self.replica_processes.wait_ready_and_join(state, started, ready_timeout)
                except BaseException:
                    self.replica_processes.drain_and_stop(state, started)
                    raise
            elif replicas < len(running):
                self.replica_processes.drain_and_stop(state, running[replicas:])
            self._apply_weights(state)

    def notify_interruption(self, replica: str, seconds: float) -> float:
        """Give a running replica a spot interruption notice of `seconds`; returns when it
        runs out (epoch seconds). See `Converger.notify_interruption`."""
        return self.converger.notify_interruption(replica, seconds)

    def replica_records(self) -> tuple[LocalLayout, list[ReplicaRecord]]:
        """The layout and the replicas started (alive or not), for observers."""
        state = self.run_dir.require()
        return state.layout, list(state.replicas.values())

    def start_controller(self, config: Path, log_level: str = "INFO") -> int:
        """Run `spillover controller run` on this stack in its own process group,
        recorded like a replica so `down` stops it (first, before what it drives)."""
        with self.run_dir.locked():
            state = self.run_dir.require()
            if state.controller_pid and is_running(
                state.controller_pid, state.controller_started or 0
            ):
                raise StackError(f"a controller already runs (pid {state.controller_pid})")
            command = [
                sys.executable, "-m", "spillover", *(["-v"] if log_level == "DEBUG" else []),
                "controller", "run", "--config", str(config.resolve()),
                "--run-dir", str(self.run_dir.path.resolve()),
            ]  # fmt: skip
            process = start_process(command, self.run_dir.logs / "controller.log", None)
            state.controller_pid, state.controller_started = process.pid, start_ticks(process.pid)
            self.run_dir.save(state)
            return process.pid

    def set_weights(self, weights: dict[str, int]) -> dict[str, int]:
        """Set pool traffic shares; they stay in force as pools scale."""
        with self.run_dir.locked():
            state = self.run_dir.require()
            names = state.layout.pool_names
            unknown = set(weights) - set(names)
            if unknown:
                raise StackError(
                    f"unknown pool(s) {', '.join(sorted(unknown))}; pools are {', '.join(names)}"
                )
            shares = {pool: weights.get(pool, 0) for pool in names}
            if not self._routes_somewhere(shares):
                raise StackError(
                    f"no pool with a share above 0 has a ready replica ({_describe(shares)}); "
                    "give a share to a pool with ready replicas, or scale the pool up first"
                )
            state.weights = shares
            applied = self._apply_weights(state)
            self.run_dir.save(state)
            return applied

    def status(self) -> list[ReplicaStatus]:
        state = self.run_dir.require()
        try:
            server_stats = self.gateway.server_stats()
        except haproxy.RuntimeApiError:
            server_stats = []  # the gateway is down: say so per row instead of failing
        stats = {row.server: row for row in server_stats if row.backend == haproxy.HTTP_BACKEND}
        rows = []
        for slot in state.layout.slots:
            record = state.replicas.get(slot.name)
            running = record is not None and is_running(record.pid, record.started)
            gateway_row = stats.get(slot.name)
            rows.append(
                ReplicaStatus(
                    pool=slot.pool,
                    replica=slot.name,
                    ports=slot.ports,
                    pid=record.pid if record else None,
                    running=running,
                    ready=running and is_ready(slot.ports.http),
                    gateway_state=gateway_row.status if gateway_row else "?",
                    weight=gateway_row.weight if gateway_row else None,
                    interrupt_at=record.interrupt_at if record else None,
                )
            )
        return rows

    def down(self) -> int:
        """Stop every process of the stack by process group; returns how many groups had members."""
        with self.run_dir.locked():
            state = self.run_dir.load()
            if state is None:
                return 0
            return self._stop_everything(state)

    @property
    def gateway_endpoints(self) -> dict[str, str]:
        layout = self.run_dir.require().layout
        return {
            kind: f"127.0.0.1:{layout.gateway_port(kind)}" for kind in ("http", "grpc", "metrics")
        }

    # --- gateway and weights ----------------------------------------------------

    def _gateway_spec(self, layout: LocalLayout) -> haproxy.GatewaySpec:
        try:
            return self._build_gateway_spec(layout)
        except ValueError as error:  # e.g. a run directory too deep for a unix socket path
            raise StackError(f"cannot lay out the gateway: {error}") from error

    def _build_gateway_spec(self, layout: LocalLayout) -> haproxy.GatewaySpec:
        return haproxy.GatewaySpec(
            http_port=layout.gateway_port("http"),
            grpc_port=layout.gateway_port("grpc"),
            metrics_port=layout.gateway_port("metrics"),
            socket_path=self.run_dir.gateway_socket,
            slots=tuple(
                haproxy.ServerSlot(
                    slot.name,
                    slot.pool,
                    slot.ports.http,
                    slot.ports.grpc,
                    maxconn=haproxy.replica_maxconn(layout.pool(slot.pool).capacity_rps),
                )
                for slot in layout.slots
            ),
        )

    def _apply_weights(self, state: StackState) -> dict[str, int]:
        """Pool shares as set, or by live replicas when none were set (or when the set
        shares would leave every ready replica without traffic)."""
        by_replicas = {
            pool: sum(1 for r in state.pool_replicas(pool) if not r.leaving)
            for pool in state.layout.pool_names
        }
        shares = state.weights or by_replicas
        if state.weights and not self._routes_somewhere(state.weights):
            logger.warning(
                "shares %s reach no ready replica; traffic follows ready replicas until they do",
                _describe(state.weights),
            )
            shares = by_replicas
        if not any(shares.values()):
            return {}
        return self.gateway.set_pool_weights(shares)

    def _routes_somewhere(self, shares: dict[str, int]) -> bool:
        """True when some pool with a share above 0 has a ready server (one stats call)."""
        ready_pools = {haproxy.pool_of_server(name) for name in self.gateway.ready_servers()}
        return any(share > 0 and pool in ready_pools for pool, share in shares.items())

    # --- whole stack ------------------------------------------------------------

    def _anything_running(self, state: StackState) -> bool:
        processes = [(record.pid, record.started) for record in state.replicas.values()]
        if state.controller_pid and state.controller_started:
            processes.append((state.controller_pid, state.controller_started))
        if state.gateway_pid and state.gateway_started:
            processes.append((state.gateway_pid, state.gateway_started))
        return any(is_running(pid, started) for pid, started in processes)

    def _stop_everything(self, state: StackState) -> int:
        stopped = 0
        pid, started = state.controller_pid, state.controller_started
        if pid and started and may_signal_group(pid, started):
            stopped += stop_groups([pid])  # first: it would restart what we stop
        stopped += self.replica_processes.stop(list(state.replicas.values()))
        if state.gateway_pid and haproxy.stop_gateway(state.gateway_pid, state.gateway_started):
            stopped += 1
        self.run_dir.clear()
        return stopped
