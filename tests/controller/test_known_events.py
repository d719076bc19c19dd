"""Known events on the calendar: burst is ready at the start, tick by tick."""

from __future__ import annotations

from datetime import datetime, timezone

from spillover.controller.policy import calendar
from tests.controller.simulated import START, Scenario, scenario_config

EVENT_AT = START + 300


def with_event(**policy: object):
    event = {
        "name": "11.11",
        "start": datetime.fromtimestamp(EVENT_AT, tz=timezone.utc).isoformat(),
        "peak_multiple": 4,
        "duration_seconds": 3600,
    }
    return scenario_config(policy={"known_events": [event], "prewarm_margin_seconds": 30, **policy})


def run_to_event(scenario: Scenario) -> dict[float, int]:
    """Steady 100 rps (private covers it) until the event starts; spot desired per tick."""
    desired = {}
    while scenario.now < EVENT_AT:
        scenario.tick(100)
        desired[scenario.now] = scenario.desired("spot")
    return desired


def test_burst_is_started_one_cold_start_and_the_margin_ahead() -> None:
    config = with_event()
    assert calendar.lead_seconds(config) == 20 + 30  # spot's cold start + margin
    scenario = Scenario(config)
    desired = run_to_event(scenario)
    before = [count for at, count in desired.items() if at < EVENT_AT - 50]
    during = [count for at, count in desired.items() if at >= EVENT_AT - 50]
    assert set(before) == {0}
    # 4 x 100 rps: private plans 140, the 260 left need 4 spot replicas at 70 each.
    assert during and set(during) == {4}
    assert scenario.ready("spot") == 4  # ready when the event starts
    last_before = scenario.history[-2][1]  # the last tick before the start says why
    reason = next(d for d in last_before if getattr(d, "pool", None) == "spot")
    assert "known event 11.11 in 2 s: pre-warming for 4x the current 100 rps" in reason.reason


def test_the_forecast_takes_over_after_the_start() -> None:
    scenario = Scenario(with_event())
    run_to_event(scenario)
    for _ in range(10):
        scenario.tick(400)  # the peak came as expected: the ready spot replicas serve it
    assert scenario.ready_capacity() >= 400
    assert scenario.desired("spot") == 4


def test_without_the_calendar_burst_is_not_ready_at_the_start() -> None:
    scenario = Scenario(scenario_config(policy={"prewarm_margin_seconds": 30}))
    desired = run_to_event(scenario)
    assert set(desired.values()) == {0}
    scenario.tick(400)
    assert scenario.ready("spot") == 0
