"""The local stack: pools of real Triton replicas on 127.0.0.1 behind a real HAProxy.

Each local replica stands for one GPU replica of its pool. Replicas join the
gateway only once Triton reports ready, and leave it drained before they stop,
so scaling in either direction costs no request.

A replica can be given an interruption notice, as a spot instance gets two minutes
before the cloud takes it back: it leaves rotation at once, no longer counts toward
its pool's size (so the next converge starts a replacement), and is stopped once it
has no request in flight, or when the notice runs out.

`converge` (the controller's scale, once a tick) never waits on a replica: one it
takes out of a pool gets a notice of DRAIN_TIMEOUT_SECONDS, and a leaving replica
moves on one step per call: drained, then SIGTERM (its slot in maintenance), then
forgotten once its processes have exited, or SIGKILLed after STOP_GRACE_SECONDS.
"""

from __future__ import annotations

import http.client
import logging
import math
import shutil
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from spillover.drivers import haproxy
from spillover.drivers.processes import (
    STOP_GRACE_SECONDS,
    group_members,
    is_running,
    kill_group,
    may_signal_group,
    reap,
    start_process,
    start_ticks,
    stop_groups,
    terminate_group,
)
from spillover.drivers.tritonserver import (
    ReplicaPorts,
    find_triton,
    prepare_backend_dir,
    remove_shared_memory,
    server_command,
    server_environment,
    startup_errors,
)
from spillover.errors import SpilloverError
from spillover.local.layout import LocalLayout, Slot
from spillover.local.state import ReplicaRecord, RunDir, StackState
from spillover.model.contract import MODEL_NAME
from spillover.model.triton_config import render_python_backend_config

# Runs inside Triton's Python backend stub, so it is copied, never imported here.
PYTHON_BACKEND_MODEL = Path(__file__).parents[1] / "serving" / "triton_python_model.py"
READY_TIMEOUT_SECONDS = 120.0
DRAIN_TIMEOUT_SECONDS = 10.0
"""How long a replica leaving its pool may finish the requests it has in flight."""

logger = logging.getLogger(__name__)


class StackError(SpilloverError):
    """The stack cannot do what was asked; the message says why and what to do."""


def _describe(shares: dict[str, int]) -> str:
    return " ".join(f"{pool}={share}" for pool, share in shares.items())


class ReplicaFailed(StackError):
    """A replica did not become ready; carries Triton's errors or the tail of its log."""

    def __init__(self, name: str, reason: str, log: Path) -> None:
        super().__init__(f"replica {name} {reason}; from {log}:\n{startup_errors(log)}")
        self.replica = name


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


def is_ready(port: int, timeout: float = 0.5) -> bool:
    """Triton's own readiness: server up and every model loaded.

    Anything but an HTTP 200 is not ready, a garbled answer too: with nothing listening
    on a port in the ephemeral range, the probe's socket can be given that very port
    and connect to itself (TCP simultaneous open), and then reads its own request back.
    """
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/v2/health/ready", timeout=timeout
        ) as response:
            return response.status == 200
    except (OSError, http.client.HTTPException):  # URLError is an OSError
        return False


class LocalStack:
    """Commands on one run directory's stack; every change holds the run-dir lock."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = RunDir(run_dir)
        self._said_waiting: set[tuple[str, ...]] = set()
        """(pool, noticed replicas...) whose replacements were said to wait for a free
        slot: said once, not every tick."""

    # --- commands ---------------------------------------------------------------

    def up(
        self,
        layout: LocalLayout,
        model_onnx: Path,
        ready_timeout: float = READY_TIMEOUT_SECONDS,
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
            self._prepare_model_repository(model_onnx, model_instances, model_threads)
            state = StackState.new(layout)
            self.run_dir.save(state)
            try:
                gateway = haproxy.launch_gateway(self._gateway_spec(layout), self.run_dir.path)
                state.gateway_pid, state.gateway_started = gateway.pid, gateway.started
                self.run_dir.save(state)  # before waiting: `down` must find it if we are killed
                haproxy.wait_for_gateway(gateway)
                for pool in layout.pools:
                    self._start_replicas(
                        state, layout.pool_slots(pool.name)[: pool.initial_replicas]
                    )
                self._wait_ready_and_join(state, list(state.replicas.values()), ready_timeout)
                self._apply_weights(state)
            except BaseException:
                self._stop_everything(state)
                raise

    def scale(self, pool: str, replicas: int, ready_timeout: float = READY_TIMEOUT_SECONDS) -> None:
        """Bring a pool to `replicas` live ones, waiting for each step (the command line's
        scale): dead replicas are replaced, new ones join when ready, removed ones leave
        drained. A leaving replica (an interruption notice, or taken out by `converge`)
        counts as gone already."""
        with self.run_dir.locked():
            state = self._require_state()
            slots = self._pool_slots(state, pool, replicas)
            self._reconcile(state, pool)
            self._retire_noticed(state, pool)
            running = _counted(state, slots)
            if replicas > len(running):
                started = self._start_replicas(
                    state, self._free_slots(state, pool, slots, replicas - len(running))
                )
                try:
                    self._wait_ready_and_join(state, started, ready_timeout)
                except BaseException:
                    self._stop_replicas(state, started)
                    raise
            elif replicas < len(running):
                self._stop_replicas(state, running[replicas:])
            self._apply_weights(state)

    def converge(self, pool: str, replicas: int) -> None:
        """Move a pool towards `replicas` without waiting on any replica (the controller's
        scale): start missing replicas, let ready ones join the gateway, take extra ones
        out, and move leaving ones on a step (see `_advance_leaving`). Call it again each
        tick; weights are the caller's to set.

        An extra replica (the highest slots first) is drained and given a notice of
        DRAIN_TIMEOUT_SECONDS. A replica with a notice does not count toward `replicas`
        (a replacement starts in a free slot), is never re-enabled, and keeps its slot
        until its processes are gone."""
        with self.run_dir.locked():
            state = self._require_state()
            slots = self._pool_slots(state, pool, replicas)
            gateway = self._gateway()
            stats = gateway.server_stats()  # one read serves the whole call
            try:
                self._join_ready(state, pool, gateway, stats, wait=False)
                self._advance_leaving(state, pool, gateway, stats)
                running = _counted(state, slots)
                if replicas > len(running):
                    free = self._free_slots(state, pool, slots, replicas - len(running))
                    if free:
                        self._start_replicas(state, free)
                elif replicas < len(running):
                    self._leave(gateway, running[replicas:])
            finally:
                self.run_dir.save(state)  # a signal sent is recorded, whatever fails after

    def notify_interruption(self, replica: str, seconds: float) -> float:
        """Give a running replica notice that it will be stopped in `seconds`, as the cloud
        does before reclaiming a spot instance: it is drained at the gateway now (requests
        in flight finish, no new ones come), the next converge of its pool starts a
        replacement, and a later converge stops it once it has no request in flight, or
        once the notice runs out.

        Returns when the notice runs out (epoch seconds). A second notice never
        postpones the first.
        """
        if not (math.isfinite(seconds) and seconds > 0):
            raise StackError(f"an interruption notice needs seconds > 0, not {seconds!r}")
        with self.run_dir.locked():
            state = self._require_state()
            record = state.replicas.get(replica)
            if record is None:
                known = ", ".join(sorted(state.replicas)) or "none"
                raise StackError(
                    f"no replica {replica!r} runs in {self.run_dir.path} (replicas: {known})"
                )
            if not is_running(record.pid, record.started):
                raise StackError(
                    f"replica {replica} is not running (pid {record.pid} has exited): "
                    f"there is nothing to interrupt; `local scale {record.pool} N` replaces it"
                )
            interrupt_at = time.time() + seconds
            if record.interrupt_at is not None:
                interrupt_at = min(interrupt_at, record.interrupt_at)
            record.interrupt_at = interrupt_at
            if record.stop_requested_at is None:  # a stopping one is in maintenance already
                self._gateway().drain_server(replica)
            self.run_dir.save(state)
            logger.info(
                "%s has an interruption notice: drained, stopped once idle (in %.0f s at the "
                "latest)",
                replica,
                seconds,
            )
            return interrupt_at

    def replica_records(self) -> tuple[LocalLayout, list[ReplicaRecord]]:
        """The layout and the replicas started (alive or not), for observers."""
        state = self._require_state()
        return state.layout, list(state.replicas.values())

    def start_controller(self, config: Path, log_level: str = "INFO") -> int:
        """Run `spillover controller run` on this stack in its own process group,
        recorded like a replica so `down` stops it (first, before what it drives)."""
        with self.run_dir.locked():
            state = self._require_state()
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
            state = self._require_state()
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
        state = self._require_state()
        try:
            server_stats = self._gateway().server_stats()
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
        layout = self._require_state().layout
        return {
            kind: f"127.0.0.1:{layout.gateway_port(kind)}" for kind in ("http", "grpc", "metrics")
        }

    # --- replicas ---------------------------------------------------------------

    def _start_replicas(self, state: StackState, slots: list[Slot]) -> list[ReplicaRecord]:
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
            process = start_process(command, log, server_environment(install))
            start_time = start_ticks(process.pid)
            assert start_time is not None  # our unreaped child: at worst a zombie, never gone
            record = ReplicaRecord(slot.name, slot.pool, process.pid, start_time, str(log))
            state.replicas[slot.name] = record
            self.run_dir.save(state)  # before waiting: `down` must find it if we are killed
            started.append(record)
        return started

    def _wait_ready_and_join(
        self, state: StackState, records: list[ReplicaRecord], timeout: float
    ) -> None:
        slots = {slot.name: slot for slot in state.layout.slots}
        waiting = {record.name: record for record in records}
        deadline = time.monotonic() + timeout
        gateway = self._gateway()
        while waiting:
            for name, record in list(waiting.items()):
                if not is_running(record.pid, record.started):
                    raise ReplicaFailed(name, "exited before it was ready", Path(record.log))
                if is_ready(slots[name].ports.http):
                    gateway.enable_server(name)
                    del waiting[name]
            if waiting and time.monotonic() > deadline:
                name, record = next(iter(waiting.items()))
                raise ReplicaFailed(name, f"was not ready within {timeout:.0f} s", Path(record.log))
            time.sleep(0.1)
        for name in (record.name for record in records):
            gateway.wait_ready(name, timeout=max(deadline - time.monotonic(), 5.0))

    def _stop_replicas(self, state: StackState, records: list[ReplicaRecord]) -> None:
        """Take replicas out of the gateway, let in-flight requests finish, then stop them."""
        leaving = {record.name for record in records}
        gateway = self._gateway()
        for name in leaving:
            gateway.drain_server(name)
        for name in leaving:
            try:
                gateway.wait_drained(name, timeout=DRAIN_TIMEOUT_SECONDS)
            except haproxy.GatewayWaitTimeoutError:
                # Requests still running there are cut, and the gateway retries them elsewhere.
                logger.warning(
                    "%s still busy after %.0f s of draining; stopping it anyway",
                    name,
                    DRAIN_TIMEOUT_SECONDS,
                )
            gateway.disable_server(name)
        self._stop_processes(records)
        for record in records:
            del state.replicas[record.name]
        self.run_dir.save(state)

    def _pool_slots(self, state: StackState, pool: str, replicas: int) -> list[Slot]:
        layout = state.layout
        if pool not in layout.pool_names:
            raise StackError(f"unknown pool {pool!r}; pools are {', '.join(layout.pool_names)}")
        maximum = layout.pool(pool).max_replicas
        if not 0 <= replicas <= maximum:
            raise StackError(f"pool {pool} takes 0 to {maximum} replicas, not {replicas}")
        return layout.pool_slots(pool)

    def _reconcile(self, state: StackState, pool: str) -> None:
        """Make the records true again after a kill, waiting as long as it takes: forget
        dead replicas (stopping what they leave), and let live, ready ones that never
        joined the gateway join it."""
        gateway = self._gateway()
        self._join_ready(state, pool, gateway, gateway.server_stats(), wait=True)
        dead = [r for r in state.pool_replicas(pool) if not is_running(r.pid, r.started)]
        for record in dead:
            gateway.disable_server(record.name)
        self._stop_processes(dead)  # leftover stubs and shared memory
        for record in dead:
            del state.replicas[record.name]
        self.run_dir.save(state)

    def _join_ready(
        self,
        state: StackState,
        pool: str,
        gateway: haproxy.RuntimeApi,
        stats: list[haproxy.ServerStats],
        wait: bool,
    ) -> None:
        """Let live, ready replicas that never joined the gateway (their `up` was killed,
        or converge started them) join it. A leaving replica never joins again."""
        in_maintenance = {row.server for row in stats if row.status == "MAINT"}
        slots = {slot.name: slot for slot in state.layout.pool_slots(pool)}
        for record in state.pool_replicas(pool):
            if (
                not _leaving(record)
                and record.name in in_maintenance
                and is_running(record.pid, record.started)
                and is_ready(slots[record.name].ports.http)
            ):
                gateway.enable_server(record.name)
                if wait:
                    gateway.wait_ready(record.name, timeout=READY_TIMEOUT_SECONDS)

    def _leave(self, gateway: haproxy.RuntimeApi, records: list[ReplicaRecord]) -> None:
        """Take replicas out of their pool without waiting: drained now, with a notice of
        DRAIN_TIMEOUT_SECONDS, so later converges stop them (`_advance_leaving`)."""
        stop_by = time.time() + DRAIN_TIMEOUT_SECONDS
        for record in records:
            gateway.drain_server(record.name)
            record.interrupt_at = stop_by  # only once drained: a leaving one may be stopped
            logger.info(
                "%s leaves pool %s: drained, stopped once idle (within %.0f s)",
                record.name,
                record.pool,
                DRAIN_TIMEOUT_SECONDS,
            )

    def _advance_leaving(
        self,
        state: StackState,
        pool: str,
        gateway: haproxy.RuntimeApi,
        stats: list[haproxy.ServerStats],
    ) -> None:
        """Move each leaving replica of the pool a step on, never waiting on one.

        One with a notice stays drained until no request is in flight on it at the
        gateway (`stats`, on every backend) or its notice runs out; then it gets SIGTERM
        and its slot goes to maintenance, and so does one that exited by itself. Once its
        processes are all gone it is forgotten (leftover shared memory removed), and its
        slot is free; any still there STOP_GRACE_SECONDS after the SIGTERM get SIGKILL.
        """
        in_flight: dict[str, int] = {}
        for row in stats:
            in_flight[row.server] = in_flight.get(row.server, 0) + row.current_sessions
        now = time.time()
        for record in state.pool_replicas(pool):
            if record.stop_requested_at is None:
                busy = in_flight.get(record.name, 0)
                if not is_running(record.pid, record.started):
                    logger.log(
                        logging.INFO if _leaving(record) else logging.WARNING,
                        "%s exited; its slot is freed once its processes are gone",
                        record.name,
                    )
                elif record.interrupt_at is None:
                    continue
                elif busy and record.interrupt_at > now:
                    gateway.drain_server(record.name)  # idempotent; kept out of rotation
                    continue
                elif busy:
                    # Requests still running there are cut, and the gateway retries them elsewhere.
                    logger.warning(
                        "%s still has %d request(s) in flight when its notice ran out; "
                        "stopping it anyway",
                        record.name,
                        busy,
                    )
                else:
                    logger.info("%s is drained: stopping it", record.name)
                gateway.disable_server(record.name)
                if may_signal_group(record.pid, record.started):
                    terminate_group(record.pid)
                record.stop_requested_at = now
            if _gone(record):
                if may_signal_group(record.pid, record.started):
                    reap(record.pid)  # the leader, if it is our child
                remove_shared_memory(record.name, self.run_dir.path)
                del state.replicas[record.name]
                logger.info("%s stopped", record.name)
            elif now - record.stop_requested_at >= STOP_GRACE_SECONDS:
                logger.warning(
                    "%s still running %.0f s after SIGTERM: SIGKILL",
                    record.name,
                    now - record.stop_requested_at,
                )
                kill_group(record.pid)

    def _retire_noticed(self, state: StackState, pool: str) -> None:
        """Keep leaving replicas out of rotation (again: draining is idempotent, and a
        restarted gateway would have them in maintenance), and stop, waiting, those whose
        notice has run out or that `converge` started stopping, without a drain wait:
        they are drained already."""
        noticed = [r for r in state.pool_replicas(pool) if _leaving(r)]
        if not noticed:
            return
        gateway = self._gateway()
        now = time.time()
        due = [
            record
            for record in noticed
            if record.stop_requested_at is not None or (record.interrupt_at or 0.0) <= now
        ]
        for record in noticed:
            if record in due:
                gateway.disable_server(record.name)
            else:
                gateway.drain_server(record.name)
        if not due:
            return
        self._stop_processes(due)
        for record in due:
            logger.info("%s stopped: it was leaving its pool", record.name)
            del state.replicas[record.name]
        self.run_dir.save(state)

    def _free_slots(
        self, state: StackState, pool: str, slots: list[Slot], missing: int
    ) -> list[Slot]:
        """Up to `missing` slots with no replica; says once when replacements must wait
        for leaving replicas to stop because every slot is taken (a leaving replica keeps
        its slot until its processes are gone)."""
        free = [slot for slot in slots if slot.name not in state.replicas]
        leaving = sorted(r.name for r in state.pool_replicas(pool) if _leaving(r))
        waiting = (pool, *leaving)
        if len(free) >= missing or not leaving:
            self._said_waiting = {said for said in self._said_waiting if said[0] != pool}
        elif waiting not in self._said_waiting:
            self._said_waiting.add(waiting)
            logger.warning(
                "pool %s has no free slot for %d replacement(s): they wait for %s "
                "(leaving) to stop",
                pool,
                missing - len(free),
                ", ".join(leaving),
            )
        return free[:missing]

    def _stop_processes(self, records: list[ReplicaRecord]) -> int:
        """Stop replicas in parallel, waiting for them, and clean the shared memory they
        leave when killed."""
        ours = [record.pid for record in records if may_signal_group(record.pid, record.started)]
        stopped = stop_groups(ours, STOP_GRACE_SECONDS)
        for record in records:
            remove_shared_memory(record.name, self.run_dir.path)
        return stopped

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
                haproxy.ServerSlot(slot.name, slot.pool, slot.ports.http, slot.ports.grpc)
                for slot in layout.slots
            ),
        )

    def _gateway(self) -> haproxy.RuntimeApi:
        return haproxy.RuntimeApi(self.run_dir.gateway_socket)

    def _apply_weights(self, state: StackState) -> dict[str, int]:
        """Pool shares as set, or by live replicas when none were set (or when the set
        shares would leave every ready replica without traffic)."""
        by_replicas = {
            pool: sum(1 for r in state.pool_replicas(pool) if not _leaving(r))
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
        return self._gateway().set_pool_weights(shares)

    def _routes_somewhere(self, shares: dict[str, int]) -> bool:
        """True when some pool with a share above 0 has a ready server (one stats call)."""
        ready_pools = {haproxy.pool_of_server(name) for name in self._gateway().ready_servers()}
        return any(share > 0 and pool in ready_pools for pool, share in shares.items())

    # --- whole stack ------------------------------------------------------------

    def _prepare_model_repository(
        self, model_onnx: Path, model_instances: int, model_threads: int
    ) -> None:
        """A Python-backend repository that serves the built ONNX file."""
        model_dir = self.run_dir.path / "model_repo" / MODEL_NAME
        version_dir = model_dir / "1"
        version_dir.mkdir(parents=True, exist_ok=True)
        (model_dir / "config.pbtxt").write_text(
            render_python_backend_config(
                sys.prefix, intra_op_threads=model_threads, instances=model_instances
            )
        )
        shutil.copyfile(PYTHON_BACKEND_MODEL, version_dir / "model.py")
        link = version_dir / "model.onnx"
        link.unlink(missing_ok=True)
        link.symlink_to(model_onnx.resolve())

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
        stopped += self._stop_processes(list(state.replicas.values()))
        if state.gateway_pid and haproxy.stop_gateway(state.gateway_pid, state.gateway_started):
            stopped += 1
        self.run_dir.clear()
        return stopped

    def _require_state(self) -> StackState:
        state = self.run_dir.load()
        if state is None:
            raise StackError(
                f"no local stack in {self.run_dir.path}; "
                f"run `spillover local --run-dir {self.run_dir.path} up`"
            )
        return state


def _counted(state: StackState, slots: list[Slot]) -> list[ReplicaRecord]:
    """The pool's replicas that count toward its size, by slot: every one not leaving."""
    records = [state.replicas.get(slot.name) for slot in slots]
    return [record for record in records if record is not None and not _leaving(record)]


def _leaving(record: ReplicaRecord) -> bool:
    """Given a notice (an interruption, or a scale down) or stopping: it no longer counts
    toward its pool, never joins the gateway again, and keeps its slot until it is gone."""
    return record.interrupt_at is not None or record.stop_requested_at is not None


def _gone(record: ReplicaRecord) -> bool:
    """True once a replica's processes have all exited (its leader may be a zombie)."""
    if is_running(record.pid, record.started):
        return False
    if not may_signal_group(record.pid, record.started):
        return True  # its PID names another process now: ours exited long ago
    return not group_members(record.pid)
