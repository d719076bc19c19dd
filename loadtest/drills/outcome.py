"""A drill's outcome, and the one way every drill's outcome becomes its report.

A drill's assessment says what is particular to it (its checks, figures, events and
notes); the report adds what every drill shares: the load's own figures, the spend
over the run, whether the generator kept its schedule, the per-second timeline and
the settings it ran with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loadtest.drills import measure
from loadtest.drills.observed import Observed
from loadtest.drills.setup import Setup
from loadtest.report import Check, Event, Report, coverage_events
from loadtest.timeline import build_timeline


@dataclass(frozen=True)
class Outcome:
    """What a drill's assessment found, before the report adds the shared parts."""

    title: str
    checks: list[Check]
    figures: dict[str, Any]
    events: list[Event]
    notes: list[str] = field(default_factory=list)

    def check(self, name: str) -> Check:
        return next(check for check in self.checks if check.name == name)


def drill_report(kind: str, outcome: Outcome, observed: Observed[Any], setup: Setup[Any]) -> Report:
    """The drill's report: its outcome, the figures every drill shares, the per-second
    timeline, and the settings it ran with."""
    run = observed.run
    spend = measure.spend_by_pool(
        observed.charges,
        observed.ledger_window_s,
        run.started_at,
        run.started_at + run.trace.duration_s,
    )
    common: dict[str, Any] = {
        "offered_rps_peak": round(run.trace.peak_rps, 1),
        "requests_sent": run.sent,
        "requests_ok": run.succeeded,
        "requests_failed": run.failed,
        "p50_ms": _rounded(run.percentile_ms(50)),
        "p99_ms": _rounded(run.percentile_ms(99)),
        "generator_kept_schedule": run.schedule.kept,
        "generator_send_lag_p99_ms": round(run.schedule.lag_p99_ms, 2),
        "generator_cpu_share": round(run.schedule.client_cpu_share, 2),
        **{f"spend_{pool}_usd": round(usd, 5) for pool, usd in spend.items()},
        "spend_total_usd": round(sum(spend.values()), 5),
    }
    notes = list(outcome.notes)
    if not run.schedule.kept:
        notes.insert(0, f"The load generator could not keep its schedule: {run.schedule.reason}")
    return Report(
        kind=kind,
        title=outcome.title,
        started_at=run.started_at,
        slo_p99_ms=setup.slo_ms,
        checks=outcome.checks,
        figures={**outcome.figures, **common},
        timeline=build_timeline(run, observed.gateway, observed.controller),
        events=[*outcome.events, *coverage_events(run.coverage)],
        notes=notes,
        coverage=run.coverage,
        settings={
            "drill": setup.drill.model_dump(),
            "stack": setup.stack.model_dump(mode="json"),
        },
    )


def cut_short(kind: str, observed: Observed[Any]) -> Outcome:
    """The outcome of a drill whose run ended before some of its actions: what it checks
    happens after them, so it cannot pass, and the report says how far it got."""
    missed = observed.missed
    done = len(observed.actions) - len(missed)
    check = Check(
        "actions done before the run ended",
        done,
        len(observed.actions),
        ">=",
        "actions",
        f"{observed.run.coverage.describe()}, before {', '.join(repr(m) for m in missed)}: "
        "the drill's checks judge what follows them",
    )
    events = [Event(observed.offset(label), label) for label in observed.done]
    return Outcome(f"{kind} drill, cut short before {missed[0]!r}", [check], {}, events)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
