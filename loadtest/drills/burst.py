"""`spillover drill burst`: an 11.11-style flash sale from a standing start.

Load sits at `base_share` of private capacity, rises to `peak_share` within seconds,
holds, then decays. Measured: the share of spike requests answered within the SLO,
how long after the load outgrew private's plan the controller decided to burst (in
ticks), when burst capacity was ready against its cold start, and what the spike
cost by pool.
"""

from __future__ import annotations

import numpy as np

from loadtest.drills import measure
from loadtest.drills.harness import DrillStack, Where, run_with_actions
from loadtest.drills.settings import DrillSettings, stack_config
from loadtest.report import Check, Event, Report
from loadtest.traces import Trace, flash_sale

SPIKE = "t0: flash sale starts"
SCAN_STEP_S = 0.01


def run(settings: DrillSettings, where: Where) -> Report:
    drill = settings.burst
    config = stack_config(settings, drill, "burst.overrides")
    with DrillStack(config, where) as stack:
        burst = stack.pools_of("burst")
        capacity = stack.private_capacity_rps
        planned = capacity * config.policy.target_utilization
        trace = flash_sale(
            drill.base_share * capacity,
            drill.peak_share * capacity,
            duration_s=drill.duration_s,
            start_s=drill.warmup_s,
            rise_s=drill.rise_s,
            hold_s=drill.hold_s,
            decay_s=drill.decay_s,
        )
        observed = run_with_actions(stack, trace, settings.stack)
        run_ = observed.run
        started = run_.started_at
        slo = config.slo.p99_latency_ms
        tick = config.policy.tick_seconds
        over_plan_s = _first_above(trace, planned, since_s=0.0)
        back_under_s = _first_below(trace, planned, since_s=over_plan_s or trace.duration_s)
        # The controller sees demand as requests counted over its last tick: the spike is
        # visible once a tick's worth of load averages above the plan, not before.
        visible_s = _first_tick_average_above(trace, planned, tick)
        spike_end_s = back_under_s if back_under_s is not None else trace.duration_s

        records = measure.decisions_since(stack.database, started)
        before = measure.desired_sizes(measure.last_before(observed.controller, started))
        scale_ups = [
            change
            for change in measure.resizes(records, before)
            if change.pool in burst and change.after > (change.before or 0)
        ]
        decision = scale_ups[0] if scale_ups else None
        over_plan_at = started + over_plan_s if over_plan_s is not None else None
        visible_at = started + visible_s if visible_s is not None else None
        burst_ready = measure.first_at(
            observed.gateway, started, lambda s: any(measure.up_count(s, p) for p in burst)
        )
        cold_start = max(stack.pool_config(p).cold_start_seconds for p in burst)
        decision_delay = (
            measure.seconds_after(decision.at, visible_at)
            if decision and visible_at is not None
            else None
        )
        decision_ticks = None if decision_delay is None else round(decision_delay / tick, 2)
        within = measure.within_slo_share(run_, drill.warmup_s, spike_end_s, slo)
        spike_spend = measure.spend_by_pool(
            stack.database, started + drill.warmup_s, started + trace.duration_s
        )
        spike_requests = int(
            ((run_.intended_s >= drill.warmup_s) & (run_.intended_s < spike_end_s)).sum()
        )

        thresholds = drill.thresholds
        checks = [
            Check(
                "spike requests within the SLO",
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
            Check(
                "burst decision after a tick's load outgrew private's plan",
                decision_ticks,
                thresholds.decision_ticks,
                "<=",
                "ticks",
                None
                if decision_ticks is not None and decision_ticks <= thresholds.decision_ticks
                else "the controller sees demand as the gateway's request count over a "
                f"tick ({tick:g} s), smoothed: a rise shows fully only after it",
            ),
            measure.failed_requests_check(run_, thresholds.failed_requests),
        ]
        spend_total = sum(spike_spend.values())
        figures = {
            "private_capacity_rps": capacity,
            "private_planned_rps": round(planned, 1),
            "base_rps": round(drill.base_share * capacity, 1),
            "peak_rps": round(drill.peak_share * capacity, 1),
            "load_over_private_plan_at_s": None if over_plan_s is None else round(over_plan_s, 2),
            "spike_visible_in_a_tick_at_s": None if visible_s is None else round(visible_s, 2),
            "burst_decision_at_s": measure.seconds_after(
                decision.at if decision else None, started
            ),
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
            "spike_p99_ms": run_.percentile_ms(99, drill.warmup_s, spike_end_s),
            **{f"spike_spend_{pool}_usd": round(usd, 5) for pool, usd in spike_spend.items()},
            "spike_spend_total_usd": round(spend_total, 5),
            "spike_usd_per_1k_requests": round(spend_total / spike_requests * 1000, 5)
            if spike_requests
            else None,
        }
        events = [
            Event(drill.warmup_s, SPIKE),
            *([Event(over_plan_s, "load over private's plan")] if over_plan_s is not None else []),
            *([Event(visible_s, "a tick's load over the plan")] if visible_s is not None else []),
            *measure.event_at(decision.at if decision else None, started, "controller: burst"),
            *measure.event_at(burst_ready, started, "burst ready"),
        ]
        return measure.drill_report(
            "burst",
            f"Flash-sale drill: {drill.base_share * capacity:.0f} to "
            f"{drill.peak_share * capacity:.0f} rps",
            stack,
            observed,
            checks,
            figures,
            events,
            [],
            settings,
            drill,
        )


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
