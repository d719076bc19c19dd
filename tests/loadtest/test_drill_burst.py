"""The flash-sale drill's verdict on hand-made recordings: each check passes on a
recording where the stack did its part, and fails (saying why) where it did not."""

from __future__ import annotations

from typing import Any

import pytest

from loadtest.drills import burst
from loadtest.drills.outcome import Outcome
from loadtest.traces import Trace
from tests.loadtest import drill_samples as samples

SETUP = samples.setup("burst")
TRACE = burst.spike(SETUP)
PLAN = burst.spike_plan(TRACE, SETUP)
TICK_S = SETUP.config.policy.tick_seconds
COLD_START_S = SETUP.pool("burst").cold_start_seconds


def assess(
    *,
    slow: tuple[float, float] | None = None,
    failed: tuple[float, ...] = (),
    decision_after_ticks: float | None = 0.5,
) -> Outcome:
    """One recording: requests intended in `slow` answered in 500 ms, the burst decision
    that many ticks after a tick's load first outgrew the plan (None: never)."""
    assert PLAN.visible_s is not None
    run = samples.load_run(TRACE, slow=[(*slow, 500.0)] if slow else [], failed=failed)
    decided_s = (
        None if decision_after_ticks is None else PLAN.visible_s + decision_after_ticks * TICK_S
    )
    ready_s = None if decided_s is None else decided_s + COLD_START_S

    def statuses(t: float) -> dict[str, str]:
        up = ready_s is not None and t >= ready_s
        return {"private-0": "UP", "burst-0": "UP" if up else "MAINT"}

    decisions = (
        [] if decided_s is None else [samples.decision(decided_s, "ScalePool", "scale burst to 2")]
    )
    observed = samples.observed(
        run,
        samples.gateway(TRACE.duration_s, statuses, lambda t: {"private": TRACE.rate_at(t)}),
        samples.controller(
            TRACE.duration_s, lambda t: "normal", lambda t: {"private": 1, "burst": 0}
        ),
        decisions,
        {},
        None,
    )
    return burst.assess(observed, SETUP)


WITHIN = "spike requests within the SLO"
DECISION = "burst decision after a tick's load outgrew private's plan"
FAILED = "failed requests"
SPIKE_S = SETUP.drill.warmup_s

CASES = [
    pytest.param(WITHIN, {"slow": (SPIKE_S + 2, SPIKE_S + 2.05)}, True, id="a-few-slow-passes"),
    pytest.param(WITHIN, {"slow": (SPIKE_S, SPIKE_S + 2)}, False, id="a-slow-rise-fails"),
    pytest.param(DECISION, {"decision_after_ticks": 1.0}, True, id="decision-in-a-tick-passes"),
    pytest.param(DECISION, {"decision_after_ticks": 2.0}, False, id="decision-in-2-ticks-fails"),
    pytest.param(DECISION, {"decision_after_ticks": None}, False, id="no-decision-fails"),
    pytest.param(FAILED, {}, True, id="no-failed-request-passes"),
    pytest.param(FAILED, {"failed": (SPIKE_S + 5,)}, False, id="one-failed-request-fails"),
]


@pytest.mark.parametrize(("name", "changes", "passed"), CASES)
def test_each_check_judges_what_the_stack_did(
    name: str, changes: dict[str, Any], passed: bool
) -> None:
    samples.assert_judged(assess(**changes), name, passed)


def test_the_spike_shows_in_a_tick_once_the_tick_average_outgrows_the_plan() -> None:
    """50 rps, then 1000 rps from 10 s, against drills-short's plan (300 rps x 0.7) and
    1 s ticks: the rate is over the plan at once, a tick's average only once
    50 + 950 (t - 10) > 210, from t = 10.168."""
    step = Trace("step", ((0, 50), (10, 50), (10.001, 1000), (20, 1000)))
    plan = burst.spike_plan(step, SETUP)
    assert plan.planned_rps == pytest.approx(210)
    assert plan.over_plan_s == pytest.approx(10.0, abs=0.011)
    assert plan.visible_s == pytest.approx(10.17, abs=0.011)
    assert plan.spike_end_s == step.duration_s  # it never falls back under the plan


def test_figures_time_the_decision_and_readiness_from_the_plan() -> None:
    outcome = assess(decision_after_ticks=0.5)
    figures = outcome.figures
    assert PLAN.visible_s is not None and PLAN.over_plan_s is not None
    assert figures["burst_decision_ticks"] == 0.5
    assert figures["burst_decision"] == "burst 0 -> 2: a reason"
    expected_ready = PLAN.visible_s + 0.5 * TICK_S + COLD_START_S - PLAN.over_plan_s
    assert figures["burst_ready_after_load_over_plan_s"] == pytest.approx(expected_ready, abs=0.11)
    assert figures["spike_requests"] > 0
