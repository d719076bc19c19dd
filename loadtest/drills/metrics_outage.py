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
from loadtest.drills.harness import Action, DrillError, DrillStack, Where, run_with_actions
from loadtest.drills.settings import DrillSettings, stack_config
from loadtest.report import Check, Event, Report
from loadtest.traces import Trace

BLOCK = "t0: Triton metrics ports drop packets"
UNBLOCK = "t1: metrics reachable again"
RULE_COMMENT = "spillover-drill-metrics-outage"
STEP_S = 0.5
"""How fast the load falls at t0."""


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


def run(settings: DrillSettings, where: Where) -> Report:
    drill = settings.metrics_outage
    config = stack_config(settings, drill, "metrics-outage.overrides")
    MetricsFirewall.require()
    with DrillStack(config, where) as stack:
        layout = stack.stack.replica_records()[0]
        firewall = MetricsFirewall([slot.ports.metrics for slot in layout.slots])
        firewall.remove_leftovers()
        capacity = stack.private_capacity_rps
        high, low = drill.high_share * capacity, drill.low_share * capacity
        end = drill.warmup_s + drill.outage_s + drill.after_s
        trace = Trace(
            "burst, then falling load",
            ((0.0, high), (drill.warmup_s, high), (drill.warmup_s + STEP_S, low), (end, low)),
        )
        try:
            observed = run_with_actions(
                stack,
                trace,
                settings.stack,
                [
                    Action(drill.warmup_s, BLOCK, firewall.block),
                    Action(drill.warmup_s + drill.outage_s, UNBLOCK, firewall.unblock),
                ],
            )
        finally:
            firewall.unblock()
        run_ = observed.run
        t0, t1 = observed.done[BLOCK], observed.done[UNBLOCK]
        records = measure.decisions_since(stack.database, run_.started_at)
        safe = measure.first_mode(records, "safe", t0)
        resumed = measure.first_mode_other_than(records, "safe", t1)
        at_t0 = measure.desired_sizes(measure.last_before(observed.controller, t0))
        changes = measure.resizes([r for r in records if r.at >= t0], at_t0)
        blind_shrinks = [c for c in changes if c.at < t1 and c.after < (c.before or 0)]
        later_shrinks = [c for c in changes if c.at >= t1 and c.after < (c.before or 0)]
        burst_at_t0 = {p: at_t0.get(p, 0) for p in stack.pools_of("burst")}
        thresholds = drill.thresholds
        stale_after = config.policy.stale_after_seconds
        checks = [
            measure.failed_requests_check(run_, thresholds.failed_requests),
            Check(
                "safe mode after metrics became unreachable",
                measure.seconds_after(safe, t0),
                thresholds.safe_mode_s,
                "<=",
                "s",
                None
                if safe is not None
                else "the controller never logged safe mode; see its log in the run dir",
            ),
            Check(
                "scale-downs while blind",
                len(blind_shrinks),
                thresholds.scale_downs_blind,
                "<=",
                "decisions",
                "; ".join(f"{c.pool} {c.before} -> {c.after}: {c.reason}" for c in blind_shrinks)
                or None,
            ),
            Check(
                "safe mode left after metrics returned",
                measure.seconds_after(resumed, t1),
                thresholds.resume_s,
                "<=",
                "s",
                None if resumed is not None else "the controller stayed in safe mode",
            ),
        ]
        figures = {
            "high_rps": round(high, 1),
            "low_rps": round(low, 1),
            "stale_after_seconds": stale_after,
            "burst_replicas_at_t0": sum(burst_at_t0.values()),
            "safe_mode_after_s": measure.seconds_after(safe, t0),
            "scale_downs_while_blind": len(blind_shrinks),
            "resumed_after_s": measure.seconds_after(resumed, t1),
            "first_scale_down_after_resume_s": measure.seconds_after(
                later_shrinks[0].at if later_shrinks else None, t1
            ),
            "p99_during_outage_ms": run_.percentile_ms(
                99, observed.offset(BLOCK), observed.offset(UNBLOCK)
            ),
        }
        events = [
            Event(observed.offset(BLOCK), BLOCK),
            *measure.event_at(safe, run_.started_at, "controller: safe"),
            Event(observed.offset(UNBLOCK), UNBLOCK),
            *measure.event_at(resumed, run_.started_at, "controller resumes"),
            *(measure.event_at(later_shrinks[0].at, run_.started_at, "scale-down")
              if later_shrinks else []),
        ]  # fmt: skip
        notes = [
            f"Metrics count as unreachable after stale_after_seconds ({stale_after:g} s); "
            "a scrape of a dropped port waits for its timeout, so ticks run longer while "
            "blind.",
        ]
        if not any(burst_at_t0.values()):
            notes.append(
                "Burst ran no replica at t0, so holding it proves little: raise high_share."
            )
        return measure.drill_report(
            "metrics-outage",
            f"Metrics outage drill: blind for {drill.outage_s:g} s as load falls",
            stack,
            observed,
            checks,
            figures,
            events,
            notes,
            settings,
            drill,
        )
