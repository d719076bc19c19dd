"""The controller's scale on the local stack: a state machine moved a step per tick.

`converge` never waits on a replica: a tick spent waiting for one to drain or exit
is a tick blind to everything else. It starts missing replicas, lets ready ones join
the gateway, and takes extra ones out of their pool: one it takes out gets a notice of
the drain timeout, and a leaving replica moves on one step per call: drained,
then SIGTERM (its slot in maintenance), then forgotten once its processes have
exited, or SIGKILLed after the stop grace (`LocalSettings`).

A replica can be given an interruption notice, as a spot instance gets two minutes
before the cloud takes it back: it leaves rotation at once, no longer counts toward
its pool's size (so the next converge starts a replacement), and is stopped once it
has no request in flight, or when the notice runs out.
"""

from __future__ import annotations

import logging
import math
import time

from spillover.drivers import haproxy, processes
from spillover.drivers.local.errors import StackError
from spillover.drivers.local.layout import Slot
from spillover.drivers.local.replicas import (
    ReplicaProcesses,
    processes_gone,
)
from spillover.drivers.local.state import ReplicaRecord, StackState
from spillover.drivers.tritonserver import remove_shared_memory

logger = logging.getLogger(__name__)


class Converger:
    """Moves the pools of one run directory towards their sizes, a step per call."""

    def __init__(self, replica_processes: ReplicaProcesses) -> None:
        self.replica_processes = replica_processes
        self.run_dir = replica_processes.run_dir
        self.gateway = replica_processes.gateway
        self._said_waiting: set[tuple[str, ...]] = set()
        """(pool, noticed replicas...) whose replacements were said to wait for a free
        slot: said once, not every tick."""

    def converge(self, pool: str, replicas: int) -> None:
        """Move a pool towards `replicas` without waiting on any replica: start missing
        replicas, let ready ones join the gateway, take extra ones out, and move leaving
        ones on a step (see `_advance_leaving`). Call it again each tick; weights are the
        caller's to set.

        An extra replica (the highest slots first) is drained and given a notice of
        the drain timeout. A replica with a notice does not count toward `replicas`
        (a replacement starts in a free slot), is never re-enabled, and keeps its slot
        until its processes are gone."""
        with self.run_dir.locked():
            state = self.run_dir.require()
            slots = state.layout.slots_to_scale(pool, replicas)
            stats = self.gateway.server_stats()  # one read serves the whole call
            try:
                self.replica_processes.join_ready(state, pool, stats, wait=False)
                self._advance_leaving(state, pool, stats)
                running = state.counted(pool)
                if replicas > len(running):
                    free = self.free_slots(state, pool, slots, replicas - len(running))
                    if free:
                        self.replica_processes.start(state, free)
                elif replicas < len(running):
                    self._leave(running[replicas:])
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
            state = self.run_dir.require()
            record = state.replicas.get(replica)
            if record is None:
                known = ", ".join(sorted(state.replicas)) or "none"
                raise StackError(
                    f"no replica {replica!r} runs in {self.run_dir.path} (replicas: {known})"
                )
            if not processes.is_running(record.pid, record.started):
                raise StackError(
                    f"replica {replica} is not running (pid {record.pid} has exited): "
                    f"there is nothing to interrupt; `local scale {record.pool} N` replaces it"
                )
            interrupt_at = time.time() + seconds
            if record.interrupt_at is not None:
                interrupt_at = min(interrupt_at, record.interrupt_at)
            record.interrupt_at = interrupt_at
            if record.stop_requested_at is None:  # a stopping one is in maintenance already
                self.gateway.drain_server(replica)
            self.run_dir.save(state)
            logger.info(
                "%s has an interruption notice: drained, stopped once idle (in %.0f s at the "
                "latest)",
                replica,
                seconds,
            )
            return interrupt_at

    def free_slots(
        self, state: StackState, pool: str, slots: list[Slot], missing: int
    ) -> list[Slot]:
        """Up to `missing` slots with no replica; says once when replacements must wait
        for leaving replicas to stop because every slot is taken (a leaving replica keeps
        its slot until its processes are gone)."""
        free = [slot for slot in slots if slot.name not in state.replicas]
        leaving = sorted(r.name for r in state.pool_replicas(pool) if r.leaving)
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

    def _leave(self, records: list[ReplicaRecord]) -> None:
        """Take replicas out of their pool without waiting: drained now, with a notice of
        the drain timeout, so later converges stop them (`_advance_leaving`)."""
        drain_s = self.replica_processes.settings.drain_timeout_s
        stop_by = time.time() + drain_s
        for record in records:
            self.gateway.drain_server(record.name)
            record.interrupt_at = stop_by  # only once drained: a leaving one may be stopped
            logger.info(
                "%s leaves pool %s: drained, stopped once idle (within %.0f s)",
                record.name,
                record.pool,
                drain_s,
            )

    def _advance_leaving(
        self, state: StackState, pool: str, stats: list[haproxy.ServerStats]
    ) -> None:
        """Move each leaving replica of the pool a step on, never waiting on one.

        One with a notice stays drained until no request is in flight on it at the
        gateway (`stats`, on every backend) or its notice runs out; then it gets SIGTERM
        and its slot goes to maintenance, and so does one that exited by itself. Once its
        processes are all gone it is forgotten (leftover shared memory removed), and its
        slot is free; any still there the stop grace after the SIGTERM get SIGKILL.
        """
        in_flight: dict[str, int] = {}
        for row in stats:
            in_flight[row.server] = in_flight.get(row.server, 0) + row.current_sessions
        now = time.time()
        for record in state.pool_replicas(pool):
            if record.stop_requested_at is None:
                busy = in_flight.get(record.name, 0)
                if not processes.is_running(record.pid, record.started):
                    logger.log(
                        logging.INFO if record.leaving else logging.WARNING,
                        "%s exited; its slot is freed once its processes are gone",
                        record.name,
                    )
                elif record.interrupt_at is None:
                    continue
                elif busy and record.interrupt_at > now:
                    self.gateway.drain_server(record.name)  # idempotent; kept out of rotation
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
                self.gateway.disable_server(record.name)
                if processes.may_signal_group(record.pid, record.started):
                    processes.terminate_group(record.pid)
                record.stop_requested_at = now
            if processes_gone(record):
                if processes.may_signal_group(record.pid, record.started):
                    processes.reap(record.pid)  # the leader, if it is our child
                remove_shared_memory(record.name, self.run_dir.path)
                del state.replicas[record.name]
                logger.info("%s stopped", record.name)
            elif now - record.stop_requested_at >= self.replica_processes.settings.stop_grace_s:
                logger.warning(
                    "%s still running %.0f s after SIGTERM: SIGKILL",
                    record.name,
                    now - record.stop_requested_at,
                )
                processes.kill_group(record.pid)
