"""A load run or drill written down: checks with a verdict, figures, notes and a timeline,
and its two text forms: ``report.json`` (all of it, for tools and for comparing runs)
and ``report.md`` (for the operator: verdict first, then why; ``loadtest.report_markdown``).
``loadtest.report_files`` writes them, with ``timeline.png``, into a directory per run.

A drill's report may carry its control run: the same drill with the mechanism it tests
turned off, which must fail the checks that mechanism guards. A drill whose control
passes them proves nothing, and its verdict is inconclusive.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from loadtest.results import BOUND_NAMES, Coverage
from loadtest.timeline import TimelineRow

Verdict = Literal["pass", "partial", "fail", "inconclusive"]
EXIT_CODES: dict[Verdict, int] = {"pass": 0, "fail": 1, "partial": 3, "inconclusive": 4}
"""`spillover load` and `spillover drill` exit with these: 0 every check passed over the
whole trace; 1 a check failed (or the command could not run); 3 every check passed but
a bound (request cap, time limit, Ctrl-C) ended the run before its trace did; 4 (drills)
every check passed but so did the control run, so the drill could not have failed."""
EXIT_CODES_HELP = (
    "exit status: 0 every check passed over the whole trace; 1 a check failed (or the "
    "run could not start); 3 every check passed, but a bound (request cap, time limit, "
    "Ctrl-C) ended the run before its trace did, so the verdict covers only part of it"
)
CONTROL_EXIT_HELP = (
    "; 4 every check passed but the control run (the mechanism turned off) did not fail "
    "the checks it must: INCONCLUSIVE, the drill could not have failed"
)

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
TIMELINE_PNG = "timeline.png"
CONTROL_TIMELINE_PNG = "control-timeline.png"


@dataclass(frozen=True)
class Check:
    """One goal of a run: a measured value against a threshold."""

    name: str
    value: float | None
    """None when it could not be measured, which fails the check."""
    threshold: float
    op: Literal["<=", ">="]
    unit: str
    limit: str | None = None
    """When it failed (or could not be measured): what limits it, for the operator."""

    @property
    def passed(self) -> bool:
        if self.value is None or math.isnan(self.value):
            return False
        if self.op == "<=":
            return self.value <= self.threshold
        return self.value >= self.threshold


@dataclass(frozen=True)
class Event:
    """Something that happened during the run, e.g. ``Event(20.0, "t0: private killed")``."""

    t: float
    """Seconds from t = 0."""
    label: str


@dataclass
class Report:
    kind: str
    """"load", "failover", "burst", "spot-interruption" or "metrics-outage"."""
    title: str
    started_at: float
    """Epoch seconds of t = 0."""
    slo_p99_ms: float
    checks: list[Check] = field(default_factory=list)
    figures: dict[str, float | int | str | None] = field(default_factory=dict)
    """Measured values, the unit in the key name (``detection_s``)."""
    timeline: list[TimelineRow] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What limits a goal, what the machine could not do."""
    settings: dict[str, Any] = field(default_factory=dict)
    """The drill or load settings used; JSON-able."""
    coverage: Coverage | None = None
    """How much of its trace the run offered; None: not recorded (taken as whole)."""
    control: Report | None = None
    """A drill's control run: the same drill with the mechanism it tests turned off."""
    control_must_fail: list[str] = field(default_factory=list)
    """The checks the control must fail, each with a measured value, for the drill to
    prove anything; empty for a run without a control."""
    control_skipped: str | None = None
    """Why a drill ran no control (--no-control, Ctrl-C); None when it ran one."""

    @property
    def partial(self) -> bool:
        """The run ended before its trace did: its checks judged only part of it."""
        return self.coverage is not None and not self.coverage.complete

    @property
    def verdict(self) -> Verdict:
        """ "fail" when any check failed; "partial" when all passed on part of the trace;
        "inconclusive" when all passed but the control did not fail as it must."""
        if not all(check.passed for check in self.checks):
            return "fail"
        if self.partial:
            return "partial"
        return "inconclusive" if self.control_misses else "pass"

    @property
    def control_misses(self) -> list[str]:
        """What the control run failed to show, one sentence per check it must fail;
        empty when it failed every one with a measured value (or there is no control)."""
        if self.control is None:
            return []
        judged = {check.name: check for check in self.control.checks}
        misses = []
        for name in self.control_must_fail:
            check = judged.get(name)
            if check is None:
                misses.append(f"{name}: not judged in the control (cut short?)")
            elif check.value is None or math.isnan(check.value):
                misses.append(f"{name}: not measured in the control")
            elif check.passed:
                misses.append(
                    f"{name}: the control passed it too ({_plain(check.value)} {check.unit}, "
                    f"goal {check.op} {_plain(check.threshold)})"
                )
        return misses

    @property
    def verdict_text(self) -> str:
        """ "PASS", "FAIL", "INCONCLUSIVE", or with the share offered:
        "PASS (partial: 43% of the trace)"."""
        if self.verdict == "inconclusive":
            return "INCONCLUSIVE"
        word = "FAIL" if self.verdict == "fail" else "PASS"
        if self.coverage is not None and self.partial:
            return f"{word} ({self.coverage.partial_note})"
        return word

    @property
    def exit_code(self) -> int:
        """The command's exit status for this report (see EXIT_CODES)."""
        return EXIT_CODES[self.verdict]


WORST_FIRST: tuple[Verdict, ...] = ("fail", "inconclusive", "partial", "pass")


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    """The verdict of several runs together: any fail fails, then any inconclusive,
    then any partial."""
    found = set(verdicts)
    return next((verdict for verdict in WORST_FIRST if verdict in found), "pass")


def _plain(value: float) -> str:
    return f"{value:g}"


def coverage_events(coverage: Coverage) -> list[Event]:
    """An event where a bound cut the run short, so the timeline shows where it ended."""
    if coverage.bound is None:
        return []
    return [Event(coverage.end_s, f"run cut short: {BOUND_NAMES[coverage.bound]}")]


# --- report.json ---------------------------------------------------------------------


def report_to_json(report: Report) -> dict[str, Any]:
    """Everything in the report as strict JSON values (NaN and infinities become null)."""
    return finite(
        {
            "kind": report.kind,
            "title": report.title,
            "verdict": report.verdict,
            "verdict_text": report.verdict_text,
            "coverage": None if report.coverage is None else _coverage_json(report.coverage),
            "started_at": report.started_at,
            "started_at_utc": utc_text(report.started_at),
            "slo_p99_ms": report.slo_p99_ms,
            "checks": [{**asdict(check), "passed": check.passed} for check in report.checks],
            "figures": report.figures,
            "notes": report.notes,
            "settings": report.settings,
            "events": [asdict(event) for event in report.events],
            "timeline": [asdict(row) for row in report.timeline],
            "control": None if report.control is None else report_to_json(report.control),
            "control_must_fail": report.control_must_fail,
            "control_misses": report.control_misses,
            "control_skipped": report.control_skipped,
        }
    )


def report_from_json(data: dict[str, Any]) -> Report:
    """The inverse of ``report_to_json`` (derived fields such as verdict are recomputed)."""
    return Report(
        kind=data["kind"],
        title=data["title"],
        started_at=data["started_at"],
        slo_p99_ms=data["slo_p99_ms"],
        checks=[
            Check(
                name=check["name"],
                value=check["value"],
                threshold=check["threshold"],
                op=check["op"],
                unit=check["unit"],
                limit=check.get("limit"),
            )
            for check in data.get("checks", [])
        ],
        figures=dict(data.get("figures", {})),
        timeline=[TimelineRow(**row) for row in data.get("timeline", [])],
        events=[Event(**event) for event in data.get("events", [])],
        notes=list(data.get("notes", [])),
        settings=dict(data.get("settings", {})),
        coverage=_coverage_from_json(data.get("coverage")),
        control=None if data.get("control") is None else report_from_json(data["control"]),
        control_must_fail=list(data.get("control_must_fail", [])),
        control_skipped=data.get("control_skipped"),
    )


def _coverage_json(coverage: Coverage) -> dict[str, Any]:
    return {
        **asdict(coverage),
        "complete": coverage.complete,
        "trace_share": round(coverage.trace_share, 4),
        "requests_share": round(coverage.requests_share, 4),
        "summary": coverage.describe(),
    }


def _coverage_from_json(data: dict[str, Any] | None) -> Coverage | None:
    if data is None:
        return None
    fields = ("bound", "limit", "end_s", "trace_s", "planned", "offered")
    return Coverage(**{name: data[name] for name in fields})


def finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(key): finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    if isinstance(value, np.generic):
        return finite(value.item())
    if isinstance(value, Path):
        return str(value)
    return value


def utc_text(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def pools_of(rows: Iterable[TimelineRow]) -> list[str]:
    """Pools in the order the controller lists them, then any only the gateway saw."""
    rows = list(rows)
    ordered: dict[str, None] = {}
    for row in rows:
        ordered.update(dict.fromkeys(row.replicas))
    for row in rows:
        ordered.update(dict.fromkeys(row.share))
    return list(ordered)
