"""`spillover drill spot-interruption`: a spot replica gets its two-minute notice.

Under load that keeps burst busy, one burst replica is told it will be reclaimed in
`notice_s` (two minutes in the cloud), and when the notice runs out it is SIGKILLed
as the cloud would. It must be out of rotation at the gateway before it dies, with
no request in flight on it and none served once it should have left rotation, and a
replacement
must be serving before then, with no failed request.

Its control leaves the notice unheeded (`drain_on_notice: false`), as a cluster
without a node termination handler would: the replica serves until it is killed.
"""

from __future__ import annotations

from dataclasses import dataclass

from loadtest.drills import measure
from loadtest.drills.drill import Drill
from loadtest.drills.harness import Action, DrillStack, run_with_actions
from loadtest.drills.observed import Observed
from loadtest.drills.outcome import Outcome
from loadtest.drills.settings import SpotInterruptionDrill
from loadtest.drills.setup import DrillError, Setup
from loadtest.report import Check, Event
from loadtest.traces import constant
from spillover.drivers.haproxy import RuntimeApi

NOTICE = "t0: interruption notice"
RECLAIM = "notice runs out: replica SIGKILLed"
STOPPED = "STOPPED"
"""The victim's state at the reclaim when its process had already exited: its slot may
hold a new replica by then, whose gateway row says nothing of the victim."""
SERVED_LATE = "requests it served after it should have left rotation"


@dataclass(frozen=True)
class ReclaimFacts:
    """Which replica the cloud took, and what the gateway showed of it at the reclaim."""

    victim: str | None
    status_at_reclaim: str | None
    """Its state at the gateway ("DRAIN", "MAINT", "UP"...), STOPPED when it had exited
    before the reclaim; None before the reclaim."""
    in_flight_at_reclaim: int | None
    killed: bool
    """False when it had already stopped by the time the notice ran out."""
    heeded: bool = True
    """The stack acted on the notice (drain_on_notice)."""


@dataclass
class Interruption:
    """The cloud's side: a notice, then the reclaim, and what the gateway showed then."""

    stack: DrillStack
    pool: str
    notice_s: float
    heed: bool = True
    """Act on the notice (drain, replace); False: it reaches no one."""
    victim: str | None = None
    status_at_reclaim: str | None = None
    in_flight_at_reclaim: int | None = None
    killed: bool = False
    _identity: tuple[int, int] | None = None
    """(pid, start time) of the victim: its slot and name pass to a new replica once it
    has stopped, and the cloud reclaims the instance, not the name."""

    def notify(self) -> None:
        running = self.stack.replicas(self.pool)
        if not running:
            raise DrillError(f"no {self.pool} replica runs to interrupt")
        self.victim = running[0].name
        self._identity = (running[0].pid, running[0].started)
        if self.heed:
            self.stack.stack.notify_interruption(self.victim, self.notice_s)

    def reclaim(self) -> None:
        victims = [
            record
            for record in self.stack.replicas(self.pool)
            if (record.pid, record.started) == self._identity
        ]
        if not victims:  # stopped once idle, as a drained replica should
            self.status_at_reclaim, self.in_flight_at_reclaim = STOPPED, 0
            return
        rows = [
            row
            for row in RuntimeApi(self.stack.stack.run_dir.gateway_socket).server_stats()
            if row.server == self.victim
        ]
        self.status_at_reclaim = ",".join(sorted({row.status for row in rows}))
        self.in_flight_at_reclaim = sum(row.current_sessions for row in rows)
        self.killed = bool(self.stack.kill(victims))

    def facts(self) -> ReclaimFacts:
        return ReclaimFacts(
            self.victim, self.status_at_reclaim, self.in_flight_at_reclaim, self.killed, self.heed
        )


def spot_pool(setup: Setup[SpotInterruptionDrill]) -> str:
    """The spot pool whose replica is interrupted: the first burst pool on spot."""
    spot = [p for p in setup.pools_of("burst") if setup.pool(p).capacity_type == "spot"]
    if not spot or setup.pool(spot[0]).min_replicas < 1:
        raise DrillError(
            "the spot-interruption drill needs a spot pool with min_replicas >= 1 "
            "(set it in spot-interruption.overrides)"
        )
    return spot[0]


def load_rps(setup: Setup[SpotInterruptionDrill]) -> float:
    return setup.drill.load_share * setup.private_capacity_rps


def script(stack: DrillStack, setup: Setup[SpotInterruptionDrill]) -> Observed[ReclaimFacts]:
    drill = setup.drill
    trace = constant(load_rps(setup), drill.warmup_s + drill.notice_s + drill.after_s)
    interruption = Interruption(stack, spot_pool(setup), drill.notice_s, drill.drain_on_notice)
    observed = run_with_actions(
        stack,
        trace,
        setup.stack,
        [
            Action(drill.warmup_s, NOTICE, interruption.notify),
            Action(drill.warmup_s + drill.notice_s, RECLAIM, interruption.reclaim),
        ],
    )
    return observed.with_facts(interruption.facts())


def assess(observed: Observed[ReclaimFacts], setup: Setup[SpotInterruptionDrill]) -> Outcome:
    drill, run, facts = setup.drill, observed.run, observed.facts
    pool = spot_pool(setup)
    noticed, reclaimed = observed.done[NOTICE], observed.done[RECLAIM]
    victim = facts.victim or ""
    drained = measure.first_at(
        observed.gateway, noticed, lambda s: s.status_by_server.get(victim) != "UP"
    )
    up_at_notice = {
        server for server, status in _statuses_at(observed, noticed).items() if status == "UP"
    }
    replacement = measure.first_at(
        observed.gateway,
        noticed,
        lambda s: any(
            status == "UP" and server not in up_at_notice and server != victim
            for server, status in measure.statuses(s, pool).items()
        ),
    )
    margin = None if replacement is None else round(reclaimed - replacement, 3)
    # From drain_s after the notice (by when it must be out of rotation) to the reclaim,
    # or to when it stopped (its slot in maintenance): a new replica may take it after.
    late_since = noticed + drill.thresholds.drain_s
    stopped = measure.first_at(
        observed.gateway, noticed, lambda s: s.status_by_server.get(victim) == "MAINT"
    )
    late_until = reclaimed if stopped is None else min(stopped, reclaimed)
    served_late = (
        0
        if late_until <= late_since
        else measure.served_between(observed.gateway, victim, late_since, late_until)
    )
    out_of_rotation = facts.status_at_reclaim not in (None, "UP")
    thresholds = drill.thresholds
    drain_s = measure.seconds_after(drained, noticed)
    checks = [
        measure.failed_requests_check(run, thresholds.failed_requests),
        measure.timing_check(
            "out of rotation after the notice",
            drain_s,
            thresholds.drain_s,
            never=f"{victim} stayed UP at the gateway",
            late=f"{victim} stayed UP at the gateway for {drain_s:g} s: the stack sets it "
            "to drain as the notice comes, through the gateway's runtime API",
        ),
        Check(
            "requests in flight on it when reclaimed",
            facts.in_flight_at_reclaim if out_of_rotation else None,
            0,
            "<=",
            "requests",
            None
            if out_of_rotation and facts.in_flight_at_reclaim == 0
            else f"at the reclaim the gateway showed {victim} "
            f"{facts.status_at_reclaim} with "
            f"{facts.in_flight_at_reclaim} request(s) in flight",
        ),
        Check(
            SERVED_LATE,
            served_late,
            0,
            "<=",
            "requests",
            None
            if served_late == 0
            else "the gateway's counters were not read around the notice and the reclaim"
            if served_late is None
            else f"{victim} stayed in rotation towards its reclaim: a request in flight "
            "when it died was cut off, or saved only by the gateway's retries",
        ),
        Check(
            "replacement serving before the reclaim",
            margin,
            thresholds.replacement_margin_s,
            ">=",
            "s",
            None
            if margin is not None and margin >= thresholds.replacement_margin_s
            else "a replacement needs a free slot (max_replicas) and its cold start "
            f"({setup.pool(pool).cold_start_seconds:g} s) within the notice",
        ),
    ]
    figures = {
        "load_rps": round(load_rps(setup), 1),
        "interrupted_replica": victim,
        "notice_s": drill.notice_s,
        "out_of_rotation_after_notice_s": drain_s,
        "replacement_ready_after_notice_s": measure.seconds_after(replacement, noticed),
        "replacement_margin_s": margin,
        "gateway_state_at_reclaim": facts.status_at_reclaim,
        "in_flight_at_reclaim": facts.in_flight_at_reclaim,
        "served_after_it_should_have_left_rotation": served_late,
        "notice_heeded": facts.heeded,
        "killed_at_reclaim": facts.killed,
        "p99_after_notice_ms": run.percentile_ms(99, observed.offset(NOTICE)),
    }
    events = [
        Event(observed.offset(NOTICE), f"{NOTICE} ({victim}, {drill.notice_s:g} s)"),
        *measure.event_at(drained, run.started_at, "out of rotation"),
        *measure.event_at(replacement, run.started_at, "replacement ready"),
        Event(observed.offset(RECLAIM), RECLAIM),
    ]
    notes = [
        f"The notice lasts {drill.notice_s:g} s here; EC2 gives two minutes. "
        "Locally the stack plays AWS's part: it takes the replica out of rotation at "
        "the notice (as the node termination handler cordons and drains the node) "
        "and the controller's next converge starts a replacement.",
    ]
    if not facts.heeded:
        notes.append(
            "drain_on_notice is off: the notice reached no one, as in a cluster without a "
            "node termination handler, so the replica served until it was killed."
        )
    if not facts.killed:
        notes.append(f"{victim} had already stopped when its notice ran out.")
    return Outcome(
        f"Spot interruption drill: {victim} reclaimed under {load_rps(setup):.0f} rps",
        checks,
        figures,
        events,
        notes,
    )


def _statuses_at(observed: Observed[ReclaimFacts], at: float) -> dict[str, str]:
    earlier = [sample for sample in observed.gateway if sample.at <= at]
    return earlier[-1].status_by_server if earlier else {}


def _precondition(setup: Setup[SpotInterruptionDrill]) -> None:
    spot_pool(setup)


DRILL = Drill(
    "spot-interruption",
    lambda settings: settings.spot_interruption,
    script,
    assess,
    precondition=_precondition,
    must_fail=(SERVED_LATE,),
    without="without draining",
)
