"""Simulated pools: replicas on a simulated clock, for `spillover sim`.

A pool driver like the others (the registry names it `simulated`): `scale` converges a
pool as the local driver and a Deployment do (a draining replica does not count and
stays until its notice runs out; the newest not-ready replicas go first), and
`replicas` lists what exists. What the real world does to replicas is asked of it by
the simulator: cold starts drawn per replica, spot interruptions with a notice, spot
capacity that is not there for a while (new replicas stall in `starting`), a whole
site lost and back, an API server that refuses calls.

Kept cheap at thousands of replicas: phase counts are kept as replicas change, and
the tuple of observations is rebuilt only when something changed.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from spillover.drivers.pools import PoolDriver, ReplicaTarget
from spillover.drivers.registry import DriverContext, PoolSpec
from spillover.errors import TemporaryError

NEVER = math.inf


@dataclass
class _Replica:
    name: str
    started_at: float
    ready_at: float
    """When its cold start ends; NEVER while no capacity is there to start it on."""
    phase: str = "starting"
    gone_at: float = NEVER
    """Draining: when its notice runs out and it stops."""


class SimulatedPool:
    """One pool's replicas. `clock` and `cold_start` are set by the simulator; the
    defaults (wall clock, the configured cold start) make it usable on its own."""

    def __init__(
        self,
        name: str,
        cold_start_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.clock = clock
        self.cold_start: Callable[[], float] = lambda: cold_start_seconds
        self.api_down = False
        """The pool's API server refuses calls: `scale` raises TemporaryError."""
        self.capacity_available = True
        """False: no capacity to start on (no spot instances); new replicas stall."""
        self.site_down = False
        """The whole site is lost: every replica failed, none can start."""
        self._replicas: dict[str, _Replica] = {}
        self._pending: list[tuple[float, str]] = []
        self._leaving: list[tuple[float, str]] = []
        self._counter = 0
        self.counts = {"starting": 0, "ready": 0, "draining": 0, "failed": 0}
        self.version = 0
        """Bumped at every change of a replica's phase: a listing can be cached by it."""

    # --- the PoolDriver protocol ---------------------------------------------------

    def replicas(self) -> list[ReplicaTarget]:
        return [
            ReplicaTarget(
                name=replica.name,
                pool=self.name,
                alive=replica.phase != "failed",
                ready=replica.phase == "ready",
                started_at=replica.started_at,
                metrics_url="",
                draining=replica.phase == "draining",
                gateway_server=None,
            )
            for replica in self._replicas.values()
        ]

    def scale(self, pool: str, replicas: int) -> None:
        if pool != self.name:
            raise ValueError(f"this driver runs pool {self.name}, not {pool}")
        if self.api_down:
            raise TemporaryError(f"{self.name}: API server unreachable (simulated outage)")
        now = self.clock()
        alive = self.counts["starting"] + self.counts["ready"]
        if alive < replicas:
            for _ in range(replicas - alive):
                self._start(now)
        elif alive > replicas:
            self._stop(alive - replicas)

    # --- what the world does to it ---------------------------------------------------

    def advance(self, now: float) -> None:
        """Cold starts that have ended become ready; notices that ran out stop."""
        while self._pending and self._pending[0][0] <= now:
            _, name = heapq.heappop(self._pending)
            replica = self._replicas.get(name)
            if replica is not None and replica.phase == "starting" and replica.ready_at <= now:
                self._move(replica, "ready")
        while self._leaving and self._leaving[0][0] <= now:
            _, name = heapq.heappop(self._leaving)
            replica = self._replicas.get(name)
            if replica is not None and replica.phase == "draining" and replica.gone_at <= now:
                self._remove(replica)

    def interrupt(self, count: int, now: float, notice_seconds: float, pick: Callable) -> int:
        """`count` ready replicas get notice (spot interruptions): out of rotation now,
        stopped after `notice_seconds`. `pick(names, k)` chooses which. Returns how many."""
        ready = [replica.name for replica in self._replicas.values() if replica.phase == "ready"]
        chosen = pick(ready, min(count, len(ready)))
        for name in chosen:
            replica = self._replicas[name]
            self._move(replica, "draining")
            replica.gone_at = now + notice_seconds
            heapq.heappush(self._leaving, (replica.gone_at, name))
        return len(chosen)

    def set_capacity_available(self, available: bool, now: float) -> None:
        """Capacity back: every stalled replica starts its cold start now."""
        self.capacity_available = available
        if available:
            for replica in self._replicas.values():
                if replica.phase == "starting" and replica.ready_at == NEVER:
                    self._schedule(replica, now)

    def lose_site(self) -> None:
        """Every replica fails; nothing can start until the site returns."""
        self.site_down = True
        for replica in list(self._replicas.values()):
            if replica.phase == "draining":
                self._remove(replica)
            else:
                self._move(replica, "failed")

    def restore_site(self, now: float) -> None:
        """The site is back: its failed replicas start again, each with a cold start."""
        self.site_down = False
        for replica in list(self._replicas.values()):
            if replica.phase in ("failed", "starting"):
                self._move(replica, "starting")
                replica.started_at = now
                self._schedule(replica, now)

    def phases(self) -> list[tuple[str, str, float]]:
        """(name, phase, started_at) of every replica, oldest first."""
        return [(r.name, r.phase, r.started_at) for r in self._replicas.values()]

    @property
    def running(self) -> int:
        """Replicas that are billed: ready, starting or draining."""
        return self.counts["ready"] + self.counts["starting"] + self.counts["draining"]

    # --- bookkeeping --------------------------------------------------------------------

    def _start(self, now: float) -> None:
        name = f"{self.name}-{self._counter}"
        self._counter += 1
        replica = _Replica(name, now, NEVER)
        self._replicas[name] = replica
        self.counts["starting"] += 1
        self.version += 1
        if self.site_down:
            self._move(replica, "failed")
        else:
            self._schedule(replica, now)

    def _schedule(self, replica: _Replica, now: float) -> None:
        if not self.capacity_available:
            replica.ready_at = NEVER
            return
        replica.ready_at = now + self.cold_start()
        heapq.heappush(self._pending, (replica.ready_at, replica.name))

    def _stop(self, count: int) -> None:
        """As a Deployment scales down: not-ready replicas first, newest first."""
        newest_first = list(reversed(self._replicas.values()))
        victims = [r for r in newest_first if r.phase == "starting"]
        victims += [r for r in newest_first if r.phase == "ready"]
        for replica in victims[:count]:
            self._remove(replica)

    def _move(self, replica: _Replica, phase: str) -> None:
        self.counts[replica.phase] -= 1
        self.counts[phase] += 1
        replica.phase = phase
        self.version += 1

    def _remove(self, replica: _Replica) -> None:
        self.counts[replica.phase] -= 1
        del self._replicas[replica.name]
        self.version += 1


def for_pools(pools: Sequence[PoolSpec], context: DriverContext) -> Mapping[str, PoolDriver]:
    """One SimulatedPool per pool, at its configured cold start, on the wall clock until
    the simulator gives it its own."""
    return {
        pool.name: SimulatedPool(pool.name, float(getattr(pool, "cold_start_seconds", 60.0)))
        for pool in pools
    }
