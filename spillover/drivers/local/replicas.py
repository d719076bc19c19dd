"""Replica processes of one local stack: start, wait until ready and in rotation, drain, stop.

Each local replica is a tritonserver process group in a slot of its pool, behind the
gateway server of the same name. A replica joins the gateway only once Triton
reports ready, and leaves it drained before it stops, so scaling costs no request.
The steps that wait are the blocking commands' (`spillover local up/scale`); the
controller's per-tick converge (`converge.py`) starts, joins and stops without waiting.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from spillover.drivers import haproxy, processes
from spillover.drivers.local.errors import StackError
from spillover.drivers.local.layout import Slot
from spillover.drivers.local.state import ReplicaRecord, RunDir, StackState
from spillover.drivers.tritonserver import (
    find_triton,
    is_ready,
    prepare_backend_dir,
    remove_shared_memory,
    server_command,
    server_environment,
    startup_errors,
)
from spillover.settings import DEFAULTS, LocalSettings

logger = logging.getLogger(__name__)


class ReplicaFailedError(StackError):
    """A replica did not become ready; carries Triton's errors or the tail of its log."""

    def __init__(self, name: str, reason: str, log: Path) -> None:
        super().__init__(f"replica {name} {reason}; from {log}:\n{startup_errors(log)}")
        self.replica = name


class ReplicaProcesses:
    """Starts, joins, drains and stops the replicas of one run directory."""

    def __init__(
        self,
        run_dir: RunDir,
        gateway: haproxy.RuntimeApi | None = None,
        settings: LocalSettings = DEFAULTS.local,
    ) -> None:
        self.run_dir = run_dir
        self.settings = settings
        self.gateway = gateway or haproxy.RuntimeApi(run_dir.gateway_socket)

    def start(self, state: StackState, slots: list[Slot]) -> list[ReplicaRecord]:
        """Start a replica in each slot, recorded before anything waits on it (`down`
        must find it if we are killed); they join the gateway once ready."""
        install = find_triton()
        backends = prepare_backend_dir(install, self.run_dir.path / "backends")
        started = []
        for slot in slots:
            log = self.run_dir.logs / f"{slot.name}.log"
            command = server_command(
                install,
                self.run_dir.path / "model_repo",
                backends,
                slot.ports,
                slot.name,
                self.run_dir.path,
            )
            capacity = state.layout.pool(slot.pool).capacity_rps
            process = processes.start_process(command, log, server_environment(install, capacity))
            start_time = processes.start_ticks(process.pid)
            assert start_time is not None  # our unreaped child: at worst a zombie, never gone
            record = ReplicaRecord(slot.name, slot.pool, process.pid, start_time, str(log))
            state.replicas[slot.name] = record
            self.run_dir.save(state)
            started.append(record)
        return started

    def wait_ready_and_join(
        self, state: StackState, records: list[ReplicaRecord], timeout: float
    ) -> None:
        """Let each replica join the gateway as soon as Triton says it is ready, then wait
        for the gateway's own health checks to agree; ReplicaFailedError if one exits
        first or is not ready within `timeout` seconds."""
        slots = {slot.name: slot for slot in state.layout.slots}
        waiting = {record.name: record for record in records}
        deadline = time.monotonic() + timeout
        while waiting:
            for name, record in list(waiting.items()):
                if not processes.is_running(record.pid, record.started):
                    raise ReplicaFailedError(name, "exited before it was ready", Path(record.log))
                if is_ready(slots[name].ports.http):
                    self.gateway.enable_server(name)
                    del waiting[name]
            if waiting and time.monotonic() > deadline:
                name, record = next(iter(waiting.items()))
                raise ReplicaFailedError(
                    name, f"was not ready within {timeout:.0f} s", Path(record.log)
                )
            time.sleep(0.1)
        for name in (record.name for record in records):
            self.gateway.wait_ready(name, timeout=max(deadline - time.monotonic(), 5.0))

    def join_ready(
        self, state: StackState, pool: str, stats: list[haproxy.ServerStats], wait: bool
    ) -> None:
        """Let live, ready replicas that never joined the gateway (their `up` was killed,
        or converge started them) join it; with `wait`, until the gateway's health checks
        agree. A leaving replica never joins again."""
        in_maintenance = {row.server for row in stats if row.status == "MAINT"}
        slots = {slot.name: slot for slot in state.layout.pool_slots(pool)}
        for record in state.pool_replicas(pool):
            if (
                not record.leaving
                and record.name in in_maintenance
                and processes.is_running(record.pid, record.started)
                and is_ready(slots[record.name].ports.http)
            ):
                self.gateway.enable_server(record.name)
                if wait:
                    self.gateway.wait_ready(record.name, timeout=self.settings.ready_timeout_s)

    def reconcile(self, state: StackState, pool: str) -> None:
        """Make the records true again after a kill, waiting as long as it takes: forget
        dead replicas (stopping what they leave), and let live, ready ones that never
        joined the gateway join it."""
        self.join_ready(state, pool, self.gateway.server_stats(), wait=True)
        dead = [r for r in state.pool_replicas(pool) if not processes.is_running(r.pid, r.started)]
        for record in dead:
            self.gateway.disable_server(record.name)
        self.stop(dead)  # leftover stubs and shared memory
        for record in dead:
            del state.replicas[record.name]
        self.run_dir.save(state)

    def retire_noticed(self, state: StackState, pool: str) -> None:
        """Keep leaving replicas out of rotation (again: draining is idempotent, and a
        restarted gateway would have them in maintenance), and stop, waiting, those whose
        notice has run out or that `converge` started stopping, without a drain wait:
        they are drained already."""
        noticed = [r for r in state.pool_replicas(pool) if r.leaving]
        if not noticed:
            return
        now = time.time()
        due = [
            record
            for record in noticed
            if record.stop_requested_at is not None or (record.interrupt_at or 0.0) <= now
        ]
        for record in noticed:
            if record in due:
                self.gateway.disable_server(record.name)
            else:
                self.gateway.drain_server(record.name)
        if not due:
            return
        self.stop(due)
        for record in due:
            logger.info("%s stopped: it was leaving its pool", record.name)
            del state.replicas[record.name]
        self.run_dir.save(state)

    def drain_and_stop(self, state: StackState, records: list[ReplicaRecord]) -> None:
        """Take replicas out of the gateway, let in-flight requests finish (for up to
        the drain timeout), then stop them and forget them."""
        leaving = {record.name for record in records}
        for name in leaving:
            self.gateway.drain_server(name)
        for name in leaving:
            try:
                self.gateway.wait_drained(name, timeout=self.settings.drain_timeout_s)
            except haproxy.GatewayWaitTimeoutError:
                # Requests still running there are cut, and the gateway retries them elsewhere.
                logger.warning(
                    "%s still busy after %.0f s of draining; stopping it anyway",
                    name,
                    self.settings.drain_timeout_s,
                )
            self.gateway.disable_server(name)
        self.stop(records)
        for record in records:
            del state.replicas[record.name]
        self.run_dir.save(state)

    def stop(self, records: list[ReplicaRecord]) -> int:
        """Stop replicas in parallel, waiting for them, and clean the shared memory they
        leave when killed; returns how many process groups had members."""
        ours = [
            record.pid
            for record in records
            if processes.may_signal_group(record.pid, record.started)
        ]
        stopped = processes.stop_groups(ours, self.settings.stop_grace_s)
        for record in records:
            remove_shared_memory(record.name, self.run_dir.path)
        return stopped


def processes_gone(record: ReplicaRecord) -> bool:
    """True once a replica's processes have all exited (its leader may be a zombie)."""
    if processes.is_running(record.pid, record.started):
        return False
    if not processes.may_signal_group(record.pid, record.started):
        return True  # its PID names another process now: ours exited long ago
    return not processes.group_members(record.pid)
