"""`spillover drill metrics-outage`: the controller goes blind while load falls.

Burst runs for an overflow; at t0 every replica's Triton metrics port starts dropping
packets (an iptables rule on loopback, as a broken NetworkPolicy would) and the load
falls to `low_share`. A controller acting on partial data would shrink burst after
its cooldown; this one must enter safe mode and hold, and resume (and only then scale
down) once metrics return at t1. Serving is untouched: no request may fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from loadtest.drills import measure
from loadtest.drills.drill import Drill
from loadtest.drills.harness import Action, DrillStack, run_with_actions
from loadtest.drills.observed import Observed
from loadtest.drills.outcome import Outcome
from loadtest.drills.settings import MetricsOutageDrill
from loadtest.drills.setup import DrillError, Setup
from loadtest.report import Check, Event
from loadtest.traces import Trace

BLOCK = "t0: Triton metrics ports drop packets"
UNBLOCK = "t1: metrics reachable again"
RULE_COMMENT = "spillover-drill-metrics-outage"
STEP_S = 0.5
"""How fast the load falls at t0."""
SCALE_DOWNS_BLIND = "scale-downs while blind"
RESUME_GRACE_TICKS = 2


class MetricsFirewall:
    """DROP rules for Triton's metrics ports on 127.0.0.1, tagged so a drill that was
    killed half-way has its leftovers removed by the next one."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports

    @staticmethod
    def require() -> None:
        if os.geteuid() != 0 or shutil.which("iptables") is None:
            raise DrillError(
                "the metrics-outage drill blocks Triton's metrics ports with an iptables "
                "rule on loopback, which needs root and the iptables package "
                "(scripts/install-system-deps.sh installs it when run as root)"
            )

    def block(self) -> None:
        for port in self.ports:
            _iptables("-I", *self._rule(port))

    def unblock(self) -> None:
        for port in self.ports:
            while _iptables("-D", *self._rule(port), check=False) == 0:
                pass  # a rule inserted twice is removed twice

    def remove_leftovers(self) -> None:
        listed = subprocess.run(
            ["iptables", "-S", "OUTPUT"], capture_output=True, text=True, check=True
        ).stdout
        for line in listed.splitlines():
            if RULE_COMMENT in line and line.startswith("-A "):
                _iptables("-D", *line.split()[1:], check=False)

    def _rule(self, port: int) -> list[str]:
        return [
            "OUTPUT", "-p", "tcp", "-d", "127.0.0.1", "--dport", str(port),
            "-m", "comment", "--comment", RULE_COMMENT, "-j", "DROP",
        ]  # fmt: skip


def _iptables(*args: str, check: bool = True) -> int:
    result = subprocess.run(["iptables", *args], capture_output=True, text=True)
    if check and result.returncode:
        raise DrillError(f"iptables {' '.join(args)} failed: {result.stderr.strip()}")
    return result.returncode


def falling_load(setup: Setup[MetricsOutageDrill]) -> Trace:
    """Load that keeps burst busy, then falls to low_share within STEP_S at t0."""
    drill, capacity = setup.drill, setup.private_capacity_rps
    high, low = drill.high_share * capacity, drill.low_share * capacity
    end = drill.warmup_s + drill.outage_s + drill.after_s
    return Trace(
        "burst, then falling load",
        ((0.0, high), (drill.warmup_s, high), (drill.warmup_s + STEP_S, low), (end, low)),
    )


def script(stack: DrillStack, setup: Setup[MetricsOutageDrill]) -> Observed[None]:
    drill = setup.drill
    layout = stack.stack.replica_records()[0]
    firewall = MetricsFirewall([slot.ports.metrics for slot in layout.slots])
    firewall.remove_leftovers()
    try:
        return run_with_actions(
            stack,
            falling_load(setup),
            setup.stack,
            [
                Action(drill.warmup_s, BLOCK, firewall.block),
                Action(drill.warmup_s + drill.outage_s, UNBLOCK, firewall.unblock),
            ],
        )
    finally:
        firewall.unblock()


def assess(observed: Observed[None], setup: Setup[MetricsOutageDrill]) -> Outcome:
    drill, run = setup.drill, observed.run
    t0, t1 = observed.done[BLOCK], observed.done[UNBLOCK]
    records = observed.decisions
    safe = measure.first_mode(records, "safe", t0)
    # A tick stamped just before t1 may read its metrics after it: a scrape that began
    # while blind is answered once the ports reopen. Leaving safe mode within that grace
    # of t1 is the return, and what that tick decides is not blind; earlier is not.
    grace = RESUME_GRACE_TICKS * setup.config.policy.tick_seconds
    resumed = measure.first_mode_other_than(records, "safe", t1 - grace) if safe else None
    if safe is None or resumed is None or resumed < safe:
        resumed = measure.first_mode_other_than(records, "safe", t1)
    seen_again = min(t1, resumed) if resumed is not None else t1
    at_t0 = measure.desired_sizes(measure.last_before(observed.controller, t0))
    changes = measure.resizes([r for r in records if r.at >= t0], at_t0)
    blind_shrinks = [c for c in changes if c.at < seen_again and c.after < (c.before or 0)]
    later_shrinks = [c for c in changes if c.at >= seen_again and c.after < (c.before or 0)]
    burst_at_t0 = {p: at_t0.get(p, 0) for p in setup.pools_of("burst")}
    thresholds = drill.thresholds
    stale_after = setup.config.policy.stale_after_seconds
    capacity = setup.private_capacity_rps
    safe_s, resumed_s = measure.seconds_after(safe, t0), measure.seconds_after(resumed, t1)
    checks = [
        measure.failed_requests_check(run, thresholds.failed_requests),
        measure.timing_check(
            "safe mode after metrics became unreachable",
            safe_s,
            thresholds.safe_mode_s,
            never="the controller never logged safe mode; see its log in the run dir",
            late=f"the controller enters safe mode once its metrics are older than "
            f"stale_after_seconds ({stale_after:g} s) at a tick, and a scrape of a "
            "dropped port first waits for its timeout",
        ),
        Check(
            SCALE_DOWNS_BLIND,
            len(blind_shrinks),
            thresholds.scale_downs_blind,
            "<=",
            "decisions",
            "; ".join(f"{c.pool} {c.before} -> {c.after}: {c.reason}" for c in blind_shrinks)
            or None,
        ),
        measure.timing_check(
            "safe mode left after metrics returned",
            resumed_s,
            thresholds.resume_s,
            never="the controller stayed in safe mode",
            late="the controller leaves safe mode at the first tick whose scrapes all "
            "answer: a scrape that began while blind waits for its timeout first",
        ),
    ]
    figures = {
        "high_rps": round(drill.high_share * capacity, 1),
        "low_rps": round(drill.low_share * capacity, 1),
        "stale_after_seconds": stale_after,
        "burst_replicas_at_t0": sum(burst_at_t0.values()),
        "safe_mode_after_s": safe_s,
        "scale_downs_while_blind": len(blind_shrinks),
        "resumed_after_s": resumed_s,
        "first_scale_down_after_resume_s": measure.seconds_after(
            later_shrinks[0].at if later_shrinks else None, t1
        ),
        "p99_during_outage_ms": run.percentile_ms(
            99, observed.offset(BLOCK), observed.offset(UNBLOCK)
        ),
    }
    events = [
        Event(observed.offset(BLOCK), BLOCK),
        *measure.event_at(safe, run.started_at, "controller: safe"),
        Event(observed.offset(UNBLOCK), UNBLOCK),
        *measure.event_at(resumed, run.started_at, "controller resumes"),
        *(measure.event_at(later_shrinks[0].at, run.started_at, "scale-down")
          if later_shrinks else []),
    ]  # fmt: skip
    notes = [
        f"Metrics count as unreachable after stale_after_seconds ({stale_after:g} s); "
        "a scrape of a dropped port waits for its timeout, so ticks run longer while "
        "blind.",
    ]
    if not any(burst_at_t0.values()):
        notes.append("Burst ran no replica at t0, so holding it proves little: raise high_share.")
    return Outcome(
        f"Metrics outage drill: blind for {drill.outage_s:g} s as load falls",
        checks,
        figures,
        events,
        notes,
    )


DRILL = Drill(
    "metrics-outage",
    lambda settings: settings.metrics_outage,
    script,
    assess,
    precondition=lambda setup: MetricsFirewall.require(),
    must_fail=(SCALE_DOWNS_BLIND,),
    without="without safe mode",
)
