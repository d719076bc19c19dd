"""Which controller acts: client-go's leader election over a Lease, in a thread.

The rules are client-go's (tools/leaderelection), so a spillover controller shares
a Lease's meaning with every other Kubernetes controller:

- A candidate tries every retry period (jittered up to 1.2×). It takes a Lease that
  does not exist (create), that nobody holds (released), or whose record it has seen
  unchanged for the record's leaseDurationSeconds. Expiry is judged by *when this
  process saw the record change* on its own monotonic clock, never by the renewTime
  written in it, so clock skew between nodes does not matter (only skew rate).
- The leader renews every retry period; when no renew has succeeded for the renew
  deadline it stops acting. `is_leader()` checks that deadline itself against the
  last successful renew, so a leader whose renew thread is stuck in a hung request
  stops acting on time too. A follower waits the lease duration (longer than the
  renew deadline) from the last renew it saw, so the two never act at once as long
  as clocks run at the same rate.
- Writes carry the Lease's resourceVersion: of two candidates racing for an expired
  Lease, the API server lets one win (the other gets a 409).
- On a clean stop the leader releases the Lease (holder emptied, duration 1 s), so a
  follower takes over within a retry period instead of a lease duration.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from spillover.config_cluster import JITTER_FACTOR, LeaderElection
from spillover.drivers.kube_lease import LeaseLock, LeaseRecord, micro_time
from spillover.errors import SpilloverError

logger = logging.getLogger(__name__)


def default_identity() -> str:
    """The pod's name (HOSTNAME in a pod) and a random suffix: two processes in one pod
    (or a restarted one reusing its name) are still two candidates."""
    return f"{os.environ.get('HOSTNAME') or 'spillover'}_{uuid.uuid4().hex[:8]}"


@dataclass
class _Observed:
    record: LeaseRecord | None = None
    fingerprint: str | None = None
    at: float = float("-inf")
    """Monotonic time this process last saw the record change (client-go's observedTime)."""


class LeaderElector:
    """Call `run(stop)` in a thread; ask `is_leader()` before acting."""

    def __init__(
        self,
        lock: LeaseLock,
        settings: LeaderElection,
        identity: str | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.lock = lock
        self.settings = settings
        self.identity = identity or settings.identity or default_identity()
        self.monotonic = monotonic
        self.wall_clock = wall_clock
        self._observed = _Observed()
        self._renewed_at = float("-inf")
        """Monotonic time of this process's last successful take or renew."""
        self._mutex = threading.Lock()
        self._leading = False

    # --- what the loop asks -------------------------------------------------------------

    def is_leader(self) -> bool:
        """This process holds the Lease and renewed it within the renew deadline."""
        with self._mutex:
            held = self._observed.record is not None and self._observed.record.holder == (
                self.identity
            )
            fresh = self.monotonic() - self._renewed_at < self.settings.renew_deadline_seconds
            return held and fresh

    @property
    def leader(self) -> str:
        """The holder this process last saw ("" when none): for status and logs."""
        with self._mutex:
            return self._observed.record.holder if self._observed.record else ""

    # --- the election -------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Campaign, lead, and campaign again after losing, until `stop`; then release."""
        logger.info("%s: campaigning for %s", self.identity, self.lock.describe)
        while not stop.is_set():
            self.step()
            period = self.settings.retry_period_seconds
            if not self._leading:
                period *= 1 + random.random() * (JITTER_FACTOR - 1)  # candidates spread out
            stop.wait(period)
        self.release()

    def step(self) -> None:
        """One try at taking or renewing, and what it means for leading."""
        try:
            self.try_acquire_or_renew()
        except SpilloverError as error:
            logger.debug("%s: %s", self.lock.describe, error)
        leading = self.is_leader()
        if leading and not self._leading:
            logger.info("%s: became the leader (%s)", self.identity, self.lock.describe)
        elif self._leading and not leading:
            logger.warning(
                "%s: lost %s (last seen held by %s): stopped acting",
                self.identity,
                self.lock.describe,
                self.leader or "nobody",
            )
        self._leading = leading

    def try_acquire_or_renew(self) -> bool:
        """client-go's tryAcquireOrRenew; SpilloverError when the API server fails."""
        now_wall, now = micro_time(self.wall_clock()), self.monotonic()
        duration_s = self.settings.lease_duration_seconds
        if self.is_leader() and self._lease_valid(now):  # fast path: our last write stands
            mine = self._observed.record
            assert mine is not None
            renewed = LeaseRecord(
                self.identity, duration_s, mine.acquire_time, now_wall, mine.transitions
            )
            try:
                self.lock.update(renewed)
                self._took(renewed, now)
                return True
            except SpilloverError as error:
                logger.info("%s: renew failed (%s); reading it again", self.lock.describe, error)
        found = self.lock.get()
        if found is None:
            record = LeaseRecord(self.identity, duration_s, now_wall, now_wall, 0)
            self.lock.create(record)
            self._took(record, now)
            return True
        record, fingerprint = found
        with self._mutex:
            if fingerprint != self._observed.fingerprint:
                self._observed = _Observed(record, fingerprint, now)
        held_by_other = record.holder not in ("", self.identity)
        if held_by_other and self._lease_valid(now):
            return False
        if record.holder == self.identity:
            taken = LeaseRecord(
                self.identity, duration_s, record.acquire_time, now_wall, record.transitions
            )
        else:
            taken = LeaseRecord(
                self.identity, duration_s, now_wall, now_wall, record.transitions + 1
            )
        self.lock.update(taken)
        self._took(taken, now)
        return True

    def release(self) -> None:
        """Hand the Lease back on a clean stop, if this process holds it."""
        if not self.is_leader():
            return
        record = self._observed.record
        assert record is not None
        now_wall = micro_time(self.wall_clock())
        released = LeaseRecord("", 1, now_wall, now_wall, record.transitions)
        try:
            self.lock.update(released)
        except SpilloverError as error:
            logger.warning("could not release %s: %s", self.lock.describe, error)
            return
        with self._mutex:
            self._observed = _Observed(released, None, self.monotonic())
            self._renewed_at = float("-inf")
        self._leading = False
        logger.info("%s: released %s", self.identity, self.lock.describe)

    def _lease_valid(self, now: float) -> bool:
        record = self._observed.record
        return record is not None and now < self._observed.at + record.lease_duration_s

    def _took(self, record: LeaseRecord, now: float) -> None:
        with self._mutex:
            # Our own write: its fingerprint is unknown until read back, so a later read
            # counts as a change and refreshes the observation time.
            self._observed = _Observed(record, None, now)
            self._renewed_at = now
