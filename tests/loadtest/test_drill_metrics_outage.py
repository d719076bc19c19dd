"""The metrics-outage drill's verdict on hand-made recordings: each check passes on a
recording where the controller did its part, and fails (saying why) where it did not."""

from __future__ import annotations

from typing import Any

import pytest

from loadtest.drills import metrics_outage
from loadtest.drills.metrics_outage import BLOCK, UNBLOCK
from loadtest.drills.outcome import Outcome
from tests.loadtest import drill_samples as samples

SETUP = samples.setup("metrics-outage")
DRILL = SETUP.drill
T0_S = DRILL.warmup_s
T1_S = DRILL.warmup_s + DRILL.outage_s
TRACE = metrics_outage.falling_load(SETUP)


def assess(
    *,
    failed: tuple[float, ...] = (),
    safe_after_s: float | None = 2.5,
    resumed_after_s: float | None = 2.0,
    blind_scale_down_after_s: float | None = None,
    scale_down_after_resume_s: float = 3.0,
) -> Outcome:
    """One recording: burst at 2 replicas at t0; safe mode that long after t0, left that
    long after t1, a scale-down 3 s after resuming, and one while blind if asked."""
    run = samples.load_run(TRACE, failed=failed)
    decisions = [samples.decision(T0_S - 5, "SetMode", "mode burst")]
    if safe_after_s is not None:
        decisions.append(samples.decision(T0_S + safe_after_s, "SetMode", "mode safe"))
    if resumed_after_s is not None:
        decisions.append(samples.decision(T1_S + resumed_after_s, "SetMode", "mode burst"))
        decisions.append(
            samples.decision(
                T1_S + resumed_after_s + scale_down_after_resume_s, "ScalePool", "scale burst to 1"
            )
        )
    if blind_scale_down_after_s is not None:
        decisions.append(
            samples.decision(T0_S + blind_scale_down_after_s, "ScalePool", "scale burst to 1")
        )
    observed = samples.observed(
        run,
        samples.gateway(
            TRACE.duration_s,
            lambda t: {"private-0": "UP", "burst-0": "UP", "burst-1": "UP"},
            lambda t: {"private": TRACE.rate_at(t) / 2, "burst": TRACE.rate_at(t) / 2},
        ),
        samples.controller(
            TRACE.duration_s, lambda t: "burst", lambda t: {"private": 1, "burst": 2}
        ),
        decisions,
        {BLOCK: T0_S, UNBLOCK: T1_S},
        None,
    )
    return metrics_outage.assess(observed, SETUP)


FAILED = "failed requests"
SAFE = "safe mode after metrics became unreachable"
BLIND = "scale-downs while blind"
RESUMED = "safe mode left after metrics returned"

CASES = [
    pytest.param(FAILED, {}, True, id="no-failed-request-passes"),
    pytest.param(FAILED, {"failed": (T0_S + 1,)}, False, id="one-failed-request-fails"),
    pytest.param(SAFE, {"safe_after_s": 3.9}, True, id="safe-mode-in-3.9s-passes"),
    pytest.param(SAFE, {"safe_after_s": 6.0}, False, id="safe-mode-in-6s-fails"),
    pytest.param(SAFE, {"safe_after_s": None}, False, id="no-safe-mode-fails"),
    pytest.param(BLIND, {}, True, id="scale-down-only-after-resuming-passes"),
    pytest.param(BLIND, {"blind_scale_down_after_s": 5.0}, False, id="scale-down-blind-fails"),
    pytest.param(RESUMED, {"resumed_after_s": 3.9}, True, id="resumed-in-3.9s-passes"),
    pytest.param(RESUMED, {"resumed_after_s": 6.0}, False, id="resumed-in-6s-fails"),
    pytest.param(RESUMED, {"resumed_after_s": None}, False, id="never-resumed-fails"),
    pytest.param(
        BLIND,
        {"resumed_after_s": -0.3, "scale_down_after_resume_s": 0.0},
        True,
        id="the-tick-that-resumes-just-before-t1-is-not-blind-passes",
    ),
]


def test_leaving_safe_mode_while_still_blind_does_not_excuse_a_scale_down() -> None:
    """Only a return within two ticks of t1 is the metrics coming back."""
    outcome = assess(resumed_after_s=-DRILL.outage_s / 2, scale_down_after_resume_s=0.0)
    assert outcome.check(BLIND).value == 1 and not outcome.check(BLIND).passed


@pytest.mark.parametrize(("name", "changes", "passed"), CASES)
def test_each_check_judges_what_the_controller_did(
    name: str, changes: dict[str, Any], passed: bool
) -> None:
    samples.assert_judged(assess(**changes), name, passed)


def test_figures_say_what_burst_ran_and_when_it_shrank() -> None:
    figures = assess().figures
    assert figures["burst_replicas_at_t0"] == 2
    assert figures["first_scale_down_after_resume_s"] == pytest.approx(5.0)
    assert figures["safe_mode_after_s"] == pytest.approx(2.5)
