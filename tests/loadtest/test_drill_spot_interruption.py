"""The spot-interruption drill's verdict on hand-made recordings: each check passes on
a recording where the stack did its part, and fails (saying why) where it did not."""

from __future__ import annotations

from typing import Any

import pytest

from loadtest.drills import spot_interruption
from loadtest.drills.outcome import Outcome
from loadtest.drills.setup import DrillError
from loadtest.drills.spot_interruption import NOTICE, RECLAIM, ReclaimFacts
from loadtest.traces import constant
from tests.loadtest import drill_samples as samples

SETUP = samples.setup("spot-interruption")
DRILL = SETUP.drill
NOTICE_S = DRILL.warmup_s
RECLAIM_S = DRILL.warmup_s + DRILL.notice_s
END_S = RECLAIM_S + DRILL.after_s


def assess(
    *,
    failed: tuple[float, ...] = (),
    drained_after_s: float | None = 0.3,
    replacement_after_s: float | None = 5.0,
    status_at_reclaim: str = "DRAIN",
    in_flight_at_reclaim: int = 0,
    served_until_s: float | None = None,
    slot_reused_after_s: float | None = None,
) -> Outcome:
    """One recording: burst-0 gets the notice, leaves rotation drained_after_s later and
    burst-1 serves replacement_after_s after the notice (None: never). burst-0 serves
    50 rps until it leaves rotation, or until served_until_s. With slot_reused_after_s
    it stopped once idle (its slot in maintenance) and a new replica took its slot and
    name that long after the notice, serving 50 rps."""
    run = samples.load_run(constant(spot_interruption.load_rps(SETUP), END_S), failed=failed)

    reused_s = None if slot_reused_after_s is None else NOTICE_S + slot_reused_after_s

    def statuses(t: float) -> dict[str, str]:
        drained = drained_after_s is not None and t >= NOTICE_S + drained_after_s
        replaced = replacement_after_s is not None and t >= NOTICE_S + replacement_after_s
        victim = "DOWN" if t >= RECLAIM_S else "DRAIN" if drained else "UP"
        if reused_s is not None and drained:
            victim = "UP" if t >= reused_s else "MAINT"
        return {"private-0": "UP", "burst-0": victim, "burst-1": "UP" if replaced else "MAINT"}

    left_s = NOTICE_S + (drained_after_s if drained_after_s is not None else DRILL.notice_s)
    serving_until_s = served_until_s if served_until_s is not None else left_s

    def served(t: float) -> dict[str, float]:
        serving = t < serving_until_s or (reused_s is not None and t >= reused_s)
        return {"burst-0": 50.0 if serving else 0.0, "burst-1": 50.0}

    observed = samples.observed(
        run,
        samples.gateway(END_S, statuses, lambda t: {"private": 100.0, "burst": 50.0}, served),
        samples.controller(END_S, lambda t: "burst", lambda t: {"private": 1, "burst": 2}),
        [],
        {NOTICE: NOTICE_S, RECLAIM: RECLAIM_S},
        ReclaimFacts("burst-0", status_at_reclaim, in_flight_at_reclaim, killed=True),
    )
    return spot_interruption.assess(observed, SETUP)


FAILED = "failed requests"
DRAINED = "out of rotation after the notice"
IN_FLIGHT = "requests in flight on it when reclaimed"
REPLACED = "replacement serving before the reclaim"
SERVED_LATE = spot_interruption.SERVED_LATE

CASES = [
    pytest.param(FAILED, {}, True, id="no-failed-request-passes"),
    pytest.param(FAILED, {"failed": (RECLAIM_S + 1,)}, False, id="one-failed-request-fails"),
    pytest.param(DRAINED, {"drained_after_s": 0.9}, True, id="out-of-rotation-in-0.9s-passes"),
    pytest.param(
        DRAINED,
        {"drained_after_s": 2.0, "served_until_s": NOTICE_S + 0.5},  # its weight fell first
        False,
        id="out-of-rotation-in-2s-fails",
    ),
    pytest.param(
        DRAINED,
        {"drained_after_s": None, "served_until_s": NOTICE_S},  # UP, but given no traffic
        False,
        id="up-until-the-reclaim-fails",
    ),
    pytest.param(IN_FLIGHT, {"status_at_reclaim": "MAINT"}, True, id="maint-none-in-flight-passes"),
    pytest.param(IN_FLIGHT, {"in_flight_at_reclaim": 2}, False, id="two-in-flight-fails"),
    pytest.param(IN_FLIGHT, {"status_at_reclaim": "UP"}, False, id="still-up-at-reclaim-fails"),
    pytest.param(
        REPLACED, {"replacement_after_s": 9.9}, True, id="replacement-just-in-time-passes"
    ),
    pytest.param(REPLACED, {"replacement_after_s": 11.0}, False, id="replacement-late-fails"),
    pytest.param(REPLACED, {"replacement_after_s": None}, False, id="no-replacement-fails"),
    pytest.param(
        SERVED_LATE, {"served_until_s": NOTICE_S + 0.9}, True, id="idle-after-the-drain-passes"
    ),
    pytest.param(
        SERVED_LATE, {"served_until_s": NOTICE_S + 1.5}, False, id="served-after-the-drain-fails"
    ),
    pytest.param(
        SERVED_LATE,
        {"slot_reused_after_s": 3.0, "status_at_reclaim": spot_interruption.STOPPED},
        True,
        id="a-new-replica-in-its-slot-is-not-it-passes",
    ),
]


@pytest.mark.parametrize(("name", "changes", "passed"), CASES)
def test_each_check_judges_what_the_stack_did(
    name: str, changes: dict[str, Any], passed: bool
) -> None:
    samples.assert_judged(assess(**changes), name, passed)


def test_the_margin_is_how_long_the_replacement_served_before_the_reclaim() -> None:
    figures = assess(replacement_after_s=4.0).figures
    assert figures["replacement_margin_s"] == pytest.approx(DRILL.notice_s - 4.0, abs=0.11)
    assert figures["interrupted_replica"] == "burst-0"
    assert figures["gateway_state_at_reclaim"] == "DRAIN"


def test_the_control_leaves_the_notice_unheeded_and_is_seen_serving_to_the_end() -> None:
    """drain_on_notice off: the victim stays UP and serves until it is killed, so the
    check the control must fail fails, with the count of what it served (50 rps from
    drain_s after the notice to the reclaim)."""
    control = samples.control_setup("spot-interruption")
    assert control.drill.drain_on_notice is False and SETUP.drill.drain_on_notice is True
    outcome = assess(drained_after_s=None, status_at_reclaim="UP", in_flight_at_reclaim=1)
    check = outcome.check(SERVED_LATE)
    late_s = DRILL.notice_s - DRILL.thresholds.drain_s
    assert not check.passed and check.value == pytest.approx(50 * late_s, abs=6)
    assert "stayed in rotation towards its reclaim" in (check.limit or "")
    assert spot_interruption.DRILL.must_fail == (SERVED_LATE,)


def test_a_setup_without_a_warm_spot_replica_is_refused_before_any_stack_starts() -> None:
    cold = samples.setup("spot-interruption")
    pools = [
        pool.model_copy(update={"min_replicas": 0}) if pool.name == "burst" else pool
        for pool in cold.config.pools
    ]
    cold = type(cold)(cold.config.model_copy(update={"pools": pools}), cold.drill, cold.stack)
    with pytest.raises(DrillError, match="needs a spot pool with min_replicas >= 1"):
        spot_interruption.DRILL.precondition(cold)
