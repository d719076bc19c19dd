"""Every drill's report ends the same way: its own outcome, then the load's figures,
the spend over the run, the generator's schedule and the settings it ran with."""

from __future__ import annotations

import dataclasses

from loadtest.drills.outcome import Outcome, drill_report
from loadtest.report import Check, Event, Report
from loadtest.traces import constant
from spillover.controller.ledger import WindowRow
from tests.loadtest import drill_samples as samples

SETUP = samples.setup("burst")


def charge(offset_s: float, pool: str, usd: float) -> WindowRow:
    start = int(samples.STARTED_AT + offset_s)
    return WindowRow(start, pool, pool, 5.0, usd, 1.0, "test", 0, 0)


def report(kept: bool = True) -> Report:
    run = samples.load_run(constant(50, 4), failed=(1.5,))
    if not kept:
        schedule = dataclasses.replace(run.schedule, kept=False, reason="sends ran late")
        run = dataclasses.replace(run, schedule=schedule)
    observed = samples.observed(
        run,
        [],
        [],
        [],
        {},
        None,
        charges=[charge(-10, "burst", 9.0), charge(0, "private", 0.5), charge(0, "burst", 0.25)],
    )
    outcome = Outcome(
        "A drill", [Check("c", 1, 2, "<=", "s")], {"own_s": 1.5}, [Event(1.0, "t0")], ["its note"]
    )
    return drill_report("burst", outcome, observed, SETUP)


def test_the_report_adds_the_shared_figures_to_the_drills_own() -> None:
    made = report()
    assert made.kind == "burst" and made.title == "A drill" and made.verdict == "pass"
    figures = made.figures
    assert figures["own_s"] == 1.5
    assert figures["requests_failed"] == 1 and figures["requests_sent"] > 150
    # Windows overlapping the run only: the one that ended before t = 0 is not charged.
    assert figures["spend_burst_usd"] == 0.25 and figures["spend_private_usd"] == 0.5
    assert figures["spend_total_usd"] == 0.75
    assert [row.t for row in made.timeline] == [0, 1, 2, 3]
    assert made.events == [Event(1.0, "t0")] and made.notes == ["its note"]
    assert made.settings["drill"]["duration_s"] == SETUP.drill.duration_s
    assert made.settings["stack"]["protocol"] == "grpc"
    assert made.slo_p99_ms == SETUP.slo_ms


def test_a_schedule_the_generator_did_not_keep_leads_the_notes() -> None:
    assert report(kept=False).notes == [
        "The load generator could not keep its schedule: sends ran late",
        "its note",
    ]
