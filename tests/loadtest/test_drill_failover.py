"""The failover drill's verdict on hand-made recordings: each check passes on a
recording where the stack did its part, and fails (saying why) where it did not."""

from __future__ import annotations

from typing import Any

import pytest

from loadtest.drills import failover
from loadtest.drills.cli import summary
from loadtest.drills.failover import RESTORE, T0, OutageFacts
from loadtest.drills.observed import Observed
from loadtest.drills.outcome import Outcome
from loadtest.traces import constant
from tests.loadtest import drill_samples as samples

SETUP = samples.setup("failover")
DRILL = SETUP.drill
T0_S = DRILL.warmup_s
RESTORE_S = DRILL.warmup_s + DRILL.outage_s
END_S = RESTORE_S + DRILL.after_s


def assess(**changes: Any) -> Outcome:
    return failover.assess(recording(**changes), SETUP)


def recording(
    *,
    stopped_at: float | None = None,
    slow_for_s: float = 0.5,
    failed: tuple[float, ...] = (),
    failover_after_s: float | None = 0.6,
    private_ready_after_s: float = 3.0,
    failback_after_s: float | None = 4.0,
    standby_after_s: float | None = 5.0,
    phantom_at_s: float | None = None,
    phantom_factor: float = 9.0,
    capacity_alert_at_s: float | None = None,
) -> Observed[OutageFacts]:
    """One recording of the drill; each keyword is a moment after t0, restore or private
    being back (None: it never happened); stopped_at ends it there, as Ctrl-C would."""
    rps = failover.load_rps(SETUP)
    run = samples.load_run(
        constant(rps, END_S),
        slow=[(T0_S, T0_S + slow_for_s, 400.0)],
        failed=failed,
        stopped_at=stopped_at,
    )
    back_s = RESTORE_S + private_ready_after_s
    failback_s = None if failback_after_s is None else RESTORE_S + failback_after_s

    def statuses(t: float) -> dict[str, str]:
        private = "DOWN" if T0_S + 0.3 <= t < back_s else "UP"
        return {"private-0": private, "private-1": private, "burst-0": "UP"}

    def rates(t: float) -> dict[str, float]:
        if t < T0_S or (failback_s is not None and t >= failback_s):
            return {"private": rps * 0.99, "burst": rps * 0.01}
        return {"private": 0.0, "burst": rps}

    def sizes(t: float) -> dict[str, int]:
        bursting = t >= T0_S + 1 and (standby_after_s is None or t < back_s + standby_after_s)
        return {"private": 0 if T0_S <= t < back_s else 2, "burst": 2 if bursting else 1}

    def demand(t: float) -> float:
        """What the controller believed: the offered rate, but for one phantom tick."""
        phantom = phantom_at_s is not None and abs(t - phantom_at_s) < 0.5
        return rps * phantom_factor if phantom else rps

    decisions = [samples.decision(T0_S - 20, "SetMode", "mode normal")]
    if capacity_alert_at_s is not None:
        decisions.append(samples.decision(capacity_alert_at_s, "Alert", "alert capacity"))
    if failover_after_s is not None:
        decisions.append(samples.decision(T0_S + failover_after_s, "SetMode", "mode failover"))
    until_s = END_S if stopped_at is None else stopped_at
    done = {label: t for label, t in ((T0, T0_S), (RESTORE, RESTORE_S)) if t <= until_s}
    return samples.observed(
        run,
        samples.gateway(until_s, statuses, rates),
        samples.controller(until_s, lambda t: "normal", sizes, demand),
        [decision for decision in decisions if decision.at <= samples.STARTED_AT + until_s],
        done,
        OutageFacts(killed=2),
        actions=(T0, RESTORE),
    )


FAILED = "failed requests"
RECOVERY = "p99 back under the SLO after t0"
DETECTION = "controller in failover mode after t0"
FAILBACK = "private serves most traffic again after it may return"
STANDBY = "burst back at its floor after private is back"
DEMAND = "controller's demand over the busiest second offered"
ALERTS = "capacity alerts"

CASES = [
    pytest.param(FAILED, {}, True, id="no-failed-request-passes"),
    pytest.param(FAILED, {"failed": (T0_S + 1,)}, False, id="one-failed-request-fails"),
    pytest.param(RECOVERY, {"slow_for_s": 1.5}, True, id="recovery-in-1.5s-passes"),
    pytest.param(RECOVERY, {"slow_for_s": 3.0}, False, id="recovery-in-3s-fails"),
    pytest.param(DETECTION, {"failover_after_s": 1.8}, True, id="failover-mode-in-1.8s-passes"),
    pytest.param(DETECTION, {"failover_after_s": 3.0}, False, id="failover-mode-in-3s-fails"),
    pytest.param(DETECTION, {"failover_after_s": None}, False, id="no-failover-mode-fails"),
    pytest.param(FAILBACK, {"failback_after_s": 10.0}, True, id="failback-in-10s-passes"),
    pytest.param(FAILBACK, {"failback_after_s": 20.0}, False, id="failback-in-20s-fails"),
    pytest.param(FAILBACK, {"failback_after_s": None}, False, id="no-failback-fails"),
    pytest.param(STANDBY, {"standby_after_s": 12.0}, True, id="burst-at-floor-in-12s-passes"),
    pytest.param(STANDBY, {"standby_after_s": 17.0}, False, id="burst-at-floor-in-17s-fails"),
    pytest.param(STANDBY, {"standby_after_s": None}, False, id="burst-never-at-floor-fails"),
    pytest.param(DEMAND, {"phantom_at_s": T0_S + 8}, False, id="a-9x-phantom-tick-fails"),
    pytest.param(
        DEMAND, {"phantom_at_s": T0_S + 8, "phantom_factor": 1.2}, True, id="1.2x-noise-passes"
    ),
    pytest.param(ALERTS, {"capacity_alert_at_s": T0_S + 8}, False, id="a-capacity-alert-fails"),
]


@pytest.mark.parametrize(("name", "changes", "passed"), CASES)
def test_each_check_judges_what_the_stack_did(
    name: str, changes: dict[str, Any], passed: bool
) -> None:
    samples.assert_judged(assess(**changes), name, passed)


def test_a_recording_where_the_stack_did_its_part_passes_with_its_figures() -> None:
    outcome = assess()
    assert all(check.passed for check in outcome.checks)
    figures = outcome.figures
    assert figures["private_replicas_killed"] == 2
    assert figures["gateway_marked_private_down_s"] == pytest.approx(0.3, abs=0.11)
    assert figures["controller_failover_s"] == pytest.approx(0.6)
    assert figures["p99_recovery_s"] == 0.5
    assert figures["private_ready_after_restore_s"] == pytest.approx(3.0, abs=0.11)
    assert [event.label for event in outcome.events][:3] == [
        T0,
        "gateway: private down",
        "controller: failover",
    ]


def test_a_run_stopped_before_its_last_action_fails_and_says_how_far_it_got() -> None:
    """Ctrl-C 2 s after t0: private never got the chance to come back, so nothing after
    it can be judged; the verdict is not a pass, and says the run was cut short."""
    report = failover.DRILL.report(recording(stopped_at=T0_S + 2), SETUP)
    assert report.verdict == "fail"
    assert report.verdict_text == "FAIL (partial: 35% of the trace)"
    (check,) = report.checks
    assert (check.name, check.value, check.threshold) == ("actions done before the run ended", 1, 2)
    assert check.limit is not None
    assert check.limit.startswith("cut short by Ctrl-C at t = 14.0 s of the trace's 39 s")
    assert check.limit.endswith(f"before {RESTORE!r}: the drill's checks judge what follows them")
    assert [event.label for event in report.events] == [T0, "run cut short: Ctrl-C"]


def test_a_run_stopped_after_its_actions_is_assessed_as_partial() -> None:
    report = failover.DRILL.report(recording(stopped_at=END_S - 5), SETUP)
    assert all(check.passed for check in report.checks), report.checks
    assert report.verdict == "partial"
    assert report.verdict_text == "PASS (partial: 87% of the trace)"
    assert report.exit_code == 3
    assert report.coverage is not None and report.coverage.bound == "stop"
    console = summary(report).splitlines()
    assert console[0] == f"{report.title}: PASS (partial: 87% of the trace)"
    assert console[-1] == f"partial run: {report.coverage.describe()}"
