"""`spillover drill failover`: lose the whole private pool under steady load.

At t0 every private Triton replica is SIGKILLed, and any the controller restarts is
killed again for `outage_s`, as if the private cluster were gone. Measured: when the
gateway marked private down and when the controller switched to failover, how long
p99 stayed over the SLO, the failed requests, and the spend meanwhile. Then private
may come back: when it takes traffic again, and when burst is back at its floor.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from loadtest.drills import measure
from loadtest.drills.drill import Drill
from loadtest.drills.harness import Action, DrillStack, run_with_actions
from loadtest.drills.observed import Observed
from loadtest.drills.outcome import Outcome
from loadtest.drills.settings import FailoverDrill
from loadtest.drills.setup import Setup
from loadtest.report import Check, Event
from loadtest.results import LoadRun
from loadtest.traces import constant
from spillover.private_loss import PrivateLoss, private_loss

KILL_POLL_S = 0.05
T0 = "t0: every private replica SIGKILLed"
RESTORE = "private may come back"
FAILBACK_SHARE = 0.5
"""Private has failed back once it serves at least this share of requests again."""


@dataclass(frozen=True)
class OutageFacts:
    killed: int
    """Private replica processes SIGKILLed over the outage, restarts included."""


class PrivateOutage:
    """Kill every private replica now, and any that starts, until `end()`."""

    def __init__(self, stack: DrillStack, pools: list[str]) -> None:
        self.stack = stack
        self.pools = pools
        self.killed: set[tuple[int, int]] = set()
        self._over = threading.Event()
        self._thread = threading.Thread(target=self._keep_down, name="outage", daemon=True)

    def begin(self) -> None:
        self._kill_all()
        self._thread.start()

    def end(self) -> None:
        self._over.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _keep_down(self) -> None:
        while not self._over.wait(KILL_POLL_S):
            self._kill_all()

    def _kill_all(self) -> None:
        for pool in self.pools:
            for record in self.stack.kill(self.stack.replicas(pool)):
                self.killed.add((record.pid, record.started))


def load_rps(setup: Setup[FailoverDrill]) -> float:
    return setup.drill.load_share * setup.private_capacity_rps


def stated_loss(setup: Setup[FailoverDrill]) -> PrivateLoss:
    """What `spillover config check --demand <load>` states the loss costs: the drill
    measures it."""
    capacities = {pool.name: pool.capacity_rps for pool in setup.config.pools}
    return private_loss(setup.config, load_rps(setup), capacities)


def script(stack: DrillStack, setup: Setup[FailoverDrill]) -> Observed[OutageFacts]:
    drill = setup.drill
    trace = constant(load_rps(setup), drill.warmup_s + drill.outage_s + drill.after_s)
    outage = PrivateOutage(stack, setup.pools_of("private"))
    try:
        observed = run_with_actions(
            stack,
            trace,
            setup.stack,
            [
                Action(drill.warmup_s, T0, outage.begin),
                Action(drill.warmup_s + drill.outage_s, RESTORE, outage.end),
            ],
        )
    finally:
        outage.end()
    return observed.with_facts(OutageFacts(killed=len(outage.killed)))


@dataclass(frozen=True)
class _Moments:
    """Epoch seconds of what the drill looks for; None when it never happened."""

    t0: float
    restored: float
    gateway_down: float | None
    controller_failover: float | None
    private_back: float | None
    failback: float | None
    standby: float | None
    burst_up: float | None
    """A burst replica UP at the gateway, at or after t0."""
    recovery_s: float


def _moments(observed: Observed[OutageFacts], setup: Setup[FailoverDrill]) -> _Moments:
    private, burst = setup.pools_of("private"), setup.pools_of("burst")
    t0, restored = observed.done[T0], observed.done[RESTORE]
    # Burst's floor with private back: min_replicas and the failover reserve for the load.
    floors = {name: stated_loss(setup).warm_replicas[name] for name in burst}
    private_back = measure.first_at(
        observed.gateway,
        restored,
        lambda s: all(measure.up_count(s, p) >= setup.pool(p).min_replicas for p in private),
    )
    return _Moments(
        t0=t0,
        restored=restored,
        gateway_down=measure.first_at(
            observed.gateway, t0, lambda s: all(measure.none_up(p)(s) for p in private)
        ),
        controller_failover=measure.first_mode(observed.decisions, "failover", t0),
        private_back=private_back,
        failback=measure.first_share_at_least(
            observed.gateway, private[0], restored, FAILBACK_SHARE
        ),
        standby=measure.first_at(
            observed.controller,
            private_back or restored,
            lambda s: all(
                s.pools[name]["desired"] == floor and s.pools[name]["ready"] == floor
                for name, floor in floors.items()
            ),
        ),
        burst_up=measure.first_at(
            observed.gateway, t0, lambda s: any(measure.up_count(s, p) for p in burst)
        ),
        recovery_s=measure.recovery_s(
            observed.run, observed.offset(T0), observed.offset(RESTORE), setup.slo_ms
        ),
    )


def assess(observed: Observed[OutageFacts], setup: Setup[FailoverDrill]) -> Outcome:
    m = _moments(observed, setup)
    run = observed.run
    burst = setup.pools_of("burst")
    outage_spend = measure.spend_by_pool(
        observed.charges, observed.ledger_window_s, m.t0, m.restored
    )
    back_since = m.private_back or m.restored
    failed_after_t0 = measure.failed_between(run, observed.offset(T0))
    cold_start = max(setup.pool(name).cold_start_seconds for name in burst)
    # What a burst pool at 0 costs: nothing serves until a replica has cold-started.
    cold_start_x_rate = cold_start * load_rps(setup)
    stated = stated_loss(setup)
    figures = {
        "load_rps": round(load_rps(setup), 1),
        "failover_reserve_share": setup.config.failover.reserve_share,
        "warm_burst_replicas": sum(stated.warm_replicas.values()),
        "stated_private_loss_failed": None
        if stated.failed_requests is None
        else round(stated.failed_requests),
        "load_share_of_private_capacity": setup.drill.load_share,
        "private_replicas_killed": observed.facts.killed,
        "gateway_marked_private_down_s": measure.seconds_after(m.gateway_down, m.t0),
        "controller_failover_s": measure.seconds_after(m.controller_failover, m.t0),
        "p99_recovery_s": m.recovery_s,
        "failed_after_t0": failed_after_t0,
        "burst_up_at_t0": _burst_up_at(observed, burst, m.t0),
        "burst_serving_after_t0_s": measure.seconds_after(m.burst_up, m.t0),
        "burst_cold_start_s": cold_start,
        "cold_start_x_rate_requests": round(cold_start_x_rate),
        "failed_vs_cold_start_x_rate": round(failed_after_t0 / cold_start_x_rate, 2),
        "p99_during_outage_ms": run.percentile_ms(
            99, observed.offset(T0), observed.offset(RESTORE)
        ),
        "private_ready_after_restore_s": measure.seconds_after(m.private_back, m.restored),
        "p99_after_restore_ms": run.percentile_ms(99, observed.offset(RESTORE)),
        "failback_s": measure.seconds_after(m.failback, m.restored),
        "burst_at_floor_after_private_back_s": measure.seconds_after(m.standby, back_since),
        **{f"outage_spend_{pool}_usd": round(usd, 5) for pool, usd in outage_spend.items()},
    }
    events = [
        Event(observed.offset(T0), T0),
        *measure.event_at(m.gateway_down, run.started_at, "gateway: private down"),
        *measure.event_at(m.controller_failover, run.started_at, "controller: failover"),
        Event(observed.offset(RESTORE), RESTORE),
        *measure.event_at(m.private_back, run.started_at, "private ready again"),
        *measure.event_at(m.standby, run.started_at, "burst at its floor"),
    ]
    notes = [
        f"Burst keeps {sum(stated.warm_replicas.values())} warm replica(s) (min_replicas and "
        f"failover.reserve_share {setup.config.failover.reserve_share:g}) and the "
        "controller gives every ready pool a 1% trickle, so HAProxy can move all "
        "traffic to burst the moment private is marked down. A burst pool at 0 "
        "replicas cannot serve before its cold start "
        f"({max(setup.pool(p).cold_start_seconds for p in burst):g} s here, "
        "minutes on EKS GPU nodes): with no warm replica a total private loss fails "
        "requests for that long. What config check states for this load: "
        f"{stated.sentence()}.",
        "Locally, returning private replicas boot on the same cores that serve: their "
        "start-up slows every replica until they are up (p99_after_restore_ms). In a "
        "cluster they boot on their own nodes.",
    ]
    return Outcome(
        f"Failover drill: private pool killed at {load_rps(setup):.0f} rps",
        _checks(m, run, setup)
        + measure.believed_demand_checks(run, observed.controller, observed.decisions, m.t0),
        figures,
        events,
        notes,
    )


def _burst_up_at(observed: Observed[OutageFacts], burst: list[str], at: float) -> int | None:
    """Burst servers UP at the gateway at t0: the reserve the outage met (a control's
    0-replica floor means nothing if the warm-up's burst had not yet scaled down)."""
    earlier = [sample for sample in observed.gateway if sample.at <= at]
    return sum(measure.up_count(earlier[-1], pool) for pool in burst) if earlier else None


def _checks(m: _Moments, run: LoadRun, setup: Setup[FailoverDrill]) -> list[Check]:
    thresholds = setup.drill.thresholds
    cold_start = max(setup.pool(p).cold_start_seconds for p in setup.pools_of("private"))
    detection = measure.seconds_after(m.controller_failover, m.t0)
    standby = measure.seconds_after(m.standby, m.private_back or m.restored)
    return [
        measure.failed_requests_check(run, thresholds.failed_requests),
        Check(
            "p99 back under the SLO after t0",
            m.recovery_s,
            thresholds.recovery_s,
            "<=",
            "s",
            None
            if m.recovery_s <= thresholds.recovery_s
            else "requests queued or failed while the gateway moved traffic to burst",
        ),
        measure.timing_check(
            "controller in failover mode after t0",
            detection,
            thresholds.detection_s,
            never="the controller never logged failover; see its log in the run dir",
            late="the controller switches once the gateway has marked private down and "
            "a tick has seen it",
        ),
        measure.timing_check(
            "private serves most traffic again after it may return",
            measure.seconds_after(m.failback, m.restored),
            thresholds.failback_s,
            never=f"a private replica needs its cold start ({cold_start:g} s) and a "
            "tick before it takes traffic",
        ),
        measure.timing_check(
            "burst back at its floor after private is back",
            standby,
            thresholds.standby_s,
            never="burst waits scale_down_cooldown_seconds "
            f"({setup.config.policy.scale_down_cooldown_seconds:g} s) after its last need",
        ),
    ]


DRILL = Drill(
    "failover",
    lambda settings: settings.failover,
    script,
    assess,
    must_fail=(measure.FAILED_REQUESTS,),
    without="without the warm reserve",
)
