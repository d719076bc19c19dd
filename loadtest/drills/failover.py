"""`spillover drill failover`: lose the whole private pool under steady load.

At t0 every private Triton replica is SIGKILLed, and any the controller restarts is
killed again for `outage_s`, as if the private cluster were gone. Measured: when the
gateway marked private down and when the controller switched to failover, how long
p99 stayed over the SLO, the failed requests, and the spend meanwhile. Then private
may come back: when it takes traffic again, and when burst is back at its floor.
"""

from __future__ import annotations

import threading

from loadtest.drills import measure
from loadtest.drills.harness import Action, DrillStack, Where, run_with_actions
from loadtest.drills.settings import DrillSettings, stack_config
from loadtest.report import Check, Event, Report
from loadtest.traces import constant

KILL_POLL_S = 0.05
T0 = "t0: every private replica SIGKILLed"
RESTORE = "private may come back"
FAILBACK_SHARE = 0.5
"""Private has failed back once it serves at least this share of requests again."""


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
        self._thread.join(timeout=5)

    def _keep_down(self) -> None:
        while not self._over.wait(KILL_POLL_S):
            self._kill_all()

    def _kill_all(self) -> None:
        for pool in self.pools:
            for record in self.stack.kill(self.stack.replicas(pool)):
                self.killed.add((record.pid, record.started))


def run(settings: DrillSettings, where: Where) -> Report:
    drill = settings.failover
    config = stack_config(settings, drill, "failover.overrides")
    with DrillStack(config, where) as stack:
        private, burst = stack.pools_of("private"), stack.pools_of("burst")
        rps = drill.load_share * stack.private_capacity_rps
        trace = constant(rps, drill.warmup_s + drill.outage_s + drill.after_s)
        outage = PrivateOutage(stack, private)
        observed = run_with_actions(
            stack,
            trace,
            settings.stack,
            [
                Action(drill.warmup_s, T0, outage.begin),
                Action(drill.warmup_s + drill.outage_s, RESTORE, outage.end),
            ],
        )
        outage.end()
        run_ = observed.run
        t0, restored = observed.done[T0], observed.done[RESTORE]
        slo = config.slo.p99_latency_ms
        records = measure.decisions_since(stack.database, run_.started_at)

        gateway_down = measure.first_at(
            observed.gateway, t0, lambda s: all(measure.none_up(p)(s) for p in private)
        )
        controller_failover = measure.first_mode(records, "failover", t0)
        recovery = measure.recovery_s(run_, observed.offset(T0), observed.offset(RESTORE), slo)
        private_back = measure.first_at(
            observed.gateway,
            restored,
            lambda s: all(
                measure.up_count(s, p) >= stack.pool_config(p).min_replicas for p in private
            ),
        )
        failback = measure.first_share_at_least(
            observed.gateway, private[0], restored, FAILBACK_SHARE
        )
        floors = {name: stack.pool_config(name).min_replicas for name in burst}
        standby = measure.first_at(
            observed.controller,
            private_back or restored,
            lambda s: all(
                s.pools[name]["desired"] == floor and s.pools[name]["ready"] == floor
                for name, floor in floors.items()
            ),
        )
        outage_spend = measure.spend_by_pool(stack.database, t0, restored)

        thresholds = drill.thresholds
        cold_start = max(stack.pool_config(p).cold_start_seconds for p in private)
        checks = [
            measure.failed_requests_check(run_, thresholds.failed_requests),
            Check(
                "p99 back under the SLO after t0",
                recovery,
                thresholds.recovery_s,
                "<=",
                "s",
                None
                if recovery <= thresholds.recovery_s
                else "requests queued or failed while the gateway moved traffic to burst",
            ),
            Check(
                "controller in failover mode after t0",
                measure.seconds_after(controller_failover, t0),
                thresholds.detection_s,
                "<=",
                "s",
                None
                if controller_failover
                else "the controller never logged failover; see its log in the run dir",
            ),
            Check(
                "private serves most traffic again after it may return",
                measure.seconds_after(failback, restored),
                thresholds.failback_s,
                "<=",
                "s",
                f"a private replica needs its cold start ({cold_start:g} s) and a "
                "tick before it takes traffic"
                if failback is None or failback - restored > thresholds.failback_s
                else None,
            ),
            Check(
                "burst back at its floor after private is back",
                measure.seconds_after(standby, private_back or restored),
                thresholds.standby_s,
                "<=",
                "s",
                "burst waits scale_down_cooldown_seconds "
                f"({config.policy.scale_down_cooldown_seconds:g} s) after its last need"
                if standby is None
                else None,
            ),
        ]
        figures = {
            "load_rps": round(rps, 1),
            "load_share_of_private_capacity": drill.load_share,
            "private_replicas_killed": len(outage.killed),
            "gateway_marked_private_down_s": measure.seconds_after(gateway_down, t0),
            "controller_failover_s": measure.seconds_after(controller_failover, t0),
            "p99_recovery_s": recovery,
            "failed_after_t0": measure.failed_between(run_, observed.offset(T0)),
            "p99_during_outage_ms": run_.percentile_ms(
                99, observed.offset(T0), observed.offset(RESTORE)
            ),
            "private_ready_after_restore_s": measure.seconds_after(private_back, restored),
            "p99_after_restore_ms": run_.percentile_ms(99, observed.offset(RESTORE)),
            "failback_s": measure.seconds_after(failback, restored),
            "burst_at_floor_after_private_back_s": measure.seconds_after(
                standby, private_back or restored
            ),
            **{f"outage_spend_{pool}_usd": round(usd, 5) for pool, usd in outage_spend.items()},
        }
        events = [
            Event(observed.offset(T0), T0),
            *measure.event_at(gateway_down, run_.started_at, "gateway: private down"),
            *measure.event_at(controller_failover, run_.started_at, "controller: failover"),
            Event(observed.offset(RESTORE), RESTORE),
            *measure.event_at(private_back, run_.started_at, "private ready again"),
            *measure.event_at(standby, run_.started_at, "burst at its floor"),
        ]
        notes = [
            f"Burst keeps {sum(floors.values())} warm replica(s) (min_replicas) and the "
            "controller gives every ready pool a 1% trickle, so HAProxy can move all "
            "traffic to burst the moment private is marked down. A burst pool at 0 "
            "replicas cannot serve before its cold start "
            f"({max(stack.pool_config(p).cold_start_seconds for p in burst):g} s here, "
            "minutes on EKS GPU nodes): with no warm replica a total private loss fails "
            "requests for that long.",
            "Locally, returning private replicas boot on the same cores that serve: their "
            "start-up slows every replica until they are up (p99_after_restore_ms). In a "
            "cluster they boot on their own nodes.",
        ]
        return measure.drill_report(
            "failover",
            f"Failover drill: private pool killed at {rps:.0f} rps",
            stack,
            observed,
            checks,
            figures,
            events,
            notes,
            settings,
            drill,
        )
