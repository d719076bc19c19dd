"""`spillover drill burst`: an 11.11-style flash sale from a standing start.

Load sits at `base_share` of private capacity, rises to `peak_share` within seconds,
holds, then decays. Measured: the share of spike requests answered within the SLO,
how long after the load outgrew private's plan the controller decided to burst (in
ticks), when burst capacity was ready against its cold start, and what the spike
cost by pool.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from loadtest.drills import measure
from loadtest.drills.drill import Drill
from loadtest.drills.harness import DrillStack, run_with_actions
from loadtest.drills.observed import Observed
from loadtest.drills.outcome import Outcome
from loadtest.drills.settings import BurstDrill
from loadtest.drills.setup import Setup
from loadtest.report import Check, Event
from loadtest.traces import Trace, flash_sale

SPIKE = "t0: flash sale starts"
SCAN_STEP_S = 0.01


def spike(setup: Setup[BurstDrill]) -> Trace:
    drill, capacity = setup.drill, setup.private_capacity_rps
    return flash_sale(
        drill.base_share * capacity,
        drill.peak_share * capacity,
        duration_s=drill.duration_s,
        start_s=drill.warmup_s,
        rise_s=drill.rise_s,
        hold_s=drill.hold_s,
        decay_s=drill.decay_s,
    )


def script(stack: DrillStack, setup: Setup[BurstDrill]) -> Observed[None]:
    return run_with_actions(stack, spike(setup), setup.stack)


@dataclass(frozen=True)
class SpikePlan:
    """When the trace outgrew private's plan, in seconds from t = 0."""

    planned_rps: float
    over_plan_s: float | None
    visible_s: float | None
    """When a tick's average first exceeded the plan: the controller sees demand as
    requests counted over its last tick, so the spike is visible then, not before."""
    spike_end_s: float


def spike_plan(trace: Trace, setup: Setup[BurstDrill]) -> SpikePlan:
    planned = setup.private_capacity_rps * setup.config.policy.target_utilization
    over_plan_s = _first_above(trace, planned, since_s=0.0)
    back_under_s = _first_below(trace, planned, since_s=over_plan_s or trace.duration_s)
    return SpikePlan(
        planned_rps=planned,
        over_plan_s=over_plan_s,
        visible_s=_first_tick_average_above(trace, planned, setup.config.policy.tick_seconds),
        spike_end_s=back_under_s if back_under_s is not None else trace.duration_s,
    )


def assess(observed: Observed[None], setup: Setup[BurstDrill]) -> Outcome:
    drill, run = setup.drill, observed.run
    started, capacity = run.started_at, setup.private_capacity_rps
    tick = setup.config.policy.tick_seconds
    plan = spike_plan(run.trace, setup)
    burst = setup.pools_of("burst")
    before = measure.desired_sizes(measure.last_before(observed.controller, started))
    scale_ups = [
        change
        for change in measure.resizes(observed.decisions, before)
        if change.pool in burst and change.after > (change.before or 0)
    ]
    decision = scale_ups[0] if scale_ups else None
    over_plan_at = started + plan.over_plan_s if plan.over_plan_s is not None else None
    visible_at = started + plan.visible_s if plan.visible_s is not None else None
    burst_ready = measure.first_at(
        observed.gateway, started, lambda s: any(measure.up_count(s, p) for p in burst)
    )
    cold_start = max(setup.pool(p).cold_start_seconds for p in burst)
    decision_delay = (
        measure.seconds_after(decision.at, visible_at)
        if decision and visible_at is not None
        else None
    )
    decision_ticks = None if decision_delay is None else round(decision_delay / tick, 2)
    within = measure.within_slo_share(run, drill.warmup_s, plan.spike_end_s, setup.slo_ms)
    spike_spend = measure.spend_by_pool(
        observed.charges,
        observed.ledger_window_s,
        started + drill.warmup_s,
        started + run.trace.duration_s,
    )
    spike_requests = int(
        ((run.intended_s >= drill.warmup_s) & (run.intended_s < plan.spike_end_s)).sum()
    )
    thresholds = drill.thresholds
    checks = [
        Check(
            WITHIN_SLO,
            None if within is None else round(within * 100, 2),
            thresholds.within_slo_share * 100,
            ">=",
            "%",
            None
            if within is not None and within >= thresholds.within_slo_share
            else "private alone carried the spike until burst replicas were ready "
            f"(cold start {cold_start:g} s); a slower rise or a warm burst replica "
            "shortens that",
        ),
        measure.timing_check(
            "burst decision after a tick's load outgrew private's plan",
            decision_ticks,
            thresholds.decision_ticks,
            never="the controller sees demand as the gateway's request count over a "
            f"tick ({tick:g} s), smoothed: a rise shows fully only after it",
            unit="ticks",
        ),
        measure.failed_requests_check(run, thresholds.failed_requests),
    ]
    spend_total = sum(spike_spend.values())
    figures = {
        "private_capacity_rps": capacity,
        "private_planned_rps": round(plan.planned_rps, 1),
        "base_rps": round(drill.base_share * capacity, 1),
        "peak_rps": round(drill.peak_share * capacity, 1),
        "load_over_private_plan_at_s": _rounded(plan.over_plan_s),
        "spike_visible_in_a_tick_at_s": _rounded(plan.visible_s),
        "burst_decision_at_s": measure.seconds_after(decision.at if decision else None, started),
        "burst_decision_delay_s": decision_delay,
        "burst_decision_ticks": decision_ticks,
        "burst_decision": f"{decision.pool} {decision.before or 0} -> {decision.after}: "
        f"{decision.reason}"
        if decision
        else None,
        "burst_ready_after_load_over_plan_s": measure.seconds_after(burst_ready, over_plan_at)
        if over_plan_at is not None
        else None,
        "burst_cold_start_s": cold_start,
        "spike_requests": spike_requests,
        "spike_within_slo_share": None if within is None else round(within, 4),
        "spike_p99_ms": run.percentile_ms(99, drill.warmup_s, plan.spike_end_s),
        **{f"spike_spend_{pool}_usd": round(usd, 5) for pool, usd in spike_spend.items()},
        "spike_spend_total_usd": round(spend_total, 5),
        "spike_usd_per_1k_requests": round(spend_total / spike_requests * 1000, 5)
        if spike_requests
        else None,
    }
    events = [
        Event(drill.warmup_s, SPIKE),
        *_event(plan.over_plan_s, "load over private's plan"),
        *_event(plan.visible_s, "a tick's load over the plan"),
        *measure.event_at(decision.at if decision else None, started, "controller: burst"),
        *measure.event_at(burst_ready, started, "burst ready"),
    ]
    return Outcome(
        f"Flash-sale drill: {drill.base_share * capacity:.0f} to "
        f"{drill.peak_share * capacity:.0f} rps",
        checks,
        figures,
        events,
    )


def _event(t: float | None, label: str) -> list[Event]:
    """An event at t seconds from t = 0, if it happened."""
    return [] if t is None else [Event(t, label)]


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 2)


def _first_above(trace: Trace, rps: float, since_s: float) -> float | None:
    for t in np.arange(since_s, trace.duration_s, SCAN_STEP_S):
        if trace.rate_at(float(t)) > rps:
            return float(t)
    return None


def _first_tick_average_above(trace: Trace, rps: float, tick_s: float) -> float | None:
    """When the rate averaged over the last tick first exceeds `rps`."""
    for t in np.arange(tick_s, trace.duration_s, SCAN_STEP_S):
        if trace.expected_requests(float(t) - tick_s, float(t)) / tick_s > rps:
            return float(t)
    return None


def _first_below(trace: Trace, rps: float, since_s: float) -> float | None:
    for t in np.arange(since_s, trace.duration_s, SCAN_STEP_S):
        if trace.rate_at(float(t)) <= rps:
            return float(t)
    return None


WITHIN_SLO = "spike requests within the SLO"

DRILL = Drill(
    "burst",
    lambda settings: settings.burst,
    script,
    assess,
    must_fail=(WITHIN_SLO,),
    without="without burst",
)
