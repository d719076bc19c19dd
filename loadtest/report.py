"""A load run or drill written down: checks with a verdict, figures, notes and a timeline,
and its two text forms: ``report.json`` (all of it, for tools and for comparing runs)
and ``report.md`` (for the operator: verdict first, then why). ``loadtest.report_files``
writes them, with ``timeline.png``, into a directory per run.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from loadtest.results import BOUND_NAMES, Coverage
from loadtest.timeline import TimelineRow

Verdict = Literal["pass", "partial", "fail"]
EXIT_CODES: dict[Verdict, int] = {"pass": 0, "fail": 1, "partial": 3}
"""`spillover load` and `spillover drill` exit with these: 0 every check passed over the
whole trace; 1 a check failed (or the command could not run); 3 every check passed but
a bound (request cap, time limit, Ctrl-C) ended the run before its trace did."""
EXIT_CODES_HELP = (
    "exit status: 0 every check passed over the whole trace; 1 a check failed (or the "
    "run could not start); 3 every check passed, but a bound (request cap, time limit, "
    "Ctrl-C) ended the run before its trace did, so the verdict covers only part of it"
)

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
TIMELINE_PNG = "timeline.png"


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

    @property
    def partial(self) -> bool:
        """The run ended before its trace did: its checks judged only part of it."""
        return self.coverage is not None and not self.coverage.complete

    @property
    def verdict(self) -> Verdict:
        """ "fail" when any check failed; "partial" when all passed on part of the trace."""
        if not all(check.passed for check in self.checks):
            return "fail"
        return "partial" if self.partial else "pass"

    @property
    def verdict_text(self) -> str:
        """ "PASS", "FAIL", or with the share offered: "PASS (partial: 43% of the trace)"."""
        word = "FAIL" if self.verdict == "fail" else "PASS"
        if self.coverage is not None and self.partial:
            return f"{word} ({self.coverage.partial_note})"
        return word

    @property
    def exit_code(self) -> int:
        """The command's exit status for this report (see EXIT_CODES)."""
        return EXIT_CODES[self.verdict]


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    """The verdict of several runs together: any fail fails, then any partial."""
    found = set(verdicts)
    return "fail" if "fail" in found else "partial" if "partial" in found else "pass"


def coverage_events(coverage: Coverage) -> list[Event]:
    """An event where a bound cut the run short, so the timeline shows where it ended."""
    if coverage.bound is None:
        return []
    return [Event(coverage.end_s, f"run cut short: {BOUND_NAMES[coverage.bound]}")]


# --- report.json ---------------------------------------------------------------------


def report_to_json(report: Report) -> dict[str, Any]:
    """Everything in the report as strict JSON values (NaN and infinities become null)."""
    return _finite(
        {
            "kind": report.kind,
            "title": report.title,
            "verdict": report.verdict,
            "verdict_text": report.verdict_text,
            "coverage": None if report.coverage is None else _coverage_json(report.coverage),
            "started_at": report.started_at,
            "started_at_utc": _utc(report.started_at),
            "slo_p99_ms": report.slo_p99_ms,
            "checks": [{**asdict(check), "passed": check.passed} for check in report.checks],
            "figures": report.figures,
            "notes": report.notes,
            "settings": report.settings,
            "events": [asdict(event) for event in report.events],
            "timeline": [asdict(row) for row in report.timeline],
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


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(key): _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    if isinstance(value, np.generic):
        return _finite(value.item())
    if isinstance(value, Path):
        return str(value)
    return value


def _utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


# --- report.md -----------------------------------------------------------------------


def render_markdown(report: Report) -> str:
    verdict = report.verdict_text
    passed = sum(check.passed for check in report.checks)
    heading = f"# {report.title} — {verdict}"
    if report.coverage is not None and report.partial:
        # The first line a reader (or `head -1`) sees says the run was cut, and how far.
        heading += f": {report.coverage.describe()}"
    lines = [
        heading,
        "",
        f"**{verdict}**: {passed} of {len(report.checks)} checks passed"
        + (" on the part of the trace that was offered" if report.partial else "")
        + f". Started {_utc(report.started_at)}; p99 SLO {_number(report.slo_p99_ms)} ms.",
        "",
    ]
    if report.checks:
        lines += [_summary(report.checks), ""]
        lines += ["## Checks", ""]
        lines += _table(
            ["Check", "Value", "Threshold", "Result", "What limits it"],
            [
                [
                    check.name,
                    _with_unit(check.value, check.unit),
                    f"{check.op} {_with_unit(check.threshold, check.unit)}",
                    "PASS" if check.passed else "**FAIL**",
                    "" if check.passed else (check.limit or ""),
                ]
                for check in report.checks
            ],
        )
        lines.append("")
    if report.figures:
        lines += ["## Figures", ""]
        lines += _table(
            ["Figure", "Value"], [[name, _number(value)] for name, value in report.figures.items()]
        )
        lines.append("")
    if report.notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in report.notes] + [""]
    if report.events:
        lines += ["## Events", ""]
        lines += _table(
            ["t (s)", "Event"], [[_number(event.t), event.label] for event in report.events]
        )
        lines.append("")
    lines += ["## Timeline", "", f"![timeline]({TIMELINE_PNG})", ""]
    if report.timeline:
        lines += _timeline_table(report.timeline) + [""]
    else:
        lines += ["No per-second data was recorded.", ""]
    if report.settings:
        lines += ["## Settings", "", "```json", json.dumps(_finite(report.settings), indent=2)]
        lines += ["```", ""]
    return "\n".join(lines)


def _summary(checks: Sequence[Check]) -> str:
    """A sentence per check, failed ones first: the verdict's reasons without the table."""
    sentences = []
    for check in sorted(checks, key=lambda check: check.passed):
        sentence = (
            f"{check.name}: {_with_unit(check.value, check.unit)} "
            f"({check.op} {_with_unit(check.threshold, check.unit)}) "
            f"{'PASS' if check.passed else 'FAIL'}"
        )
        if not check.passed and check.limit:
            sentence += f" — {check.limit.rstrip('.')}"
        sentences.append(sentence + ".")
    return " ".join(sentences)


def _timeline_table(rows: Sequence[TimelineRow]) -> list[str]:
    pools = pools_of(rows)
    headers = ["t", "planned rps", "sent", "ok", "failed", "p50 ms", "p99 ms"]
    headers += [f"{pool} share" for pool in pools]
    headers += [f"{pool} ready" for pool in pools]
    headers.append("mode")
    body = []
    for row in rows:
        cells = [
            str(row.t),
            _number(row.planned_rps),
            str(row.sent),
            str(row.ok),
            str(row.failed),
            _number(row.p50_ms),
            _number(row.p99_ms),
        ]
        cells += [f"{row.share[pool] * 100:.0f}%" if pool in row.share else "—" for pool in pools]
        cells += [str(row.replicas[pool]) if pool in row.replicas else "—" for pool in pools]
        cells.append(row.mode or "—")
        body.append(cells)
    return _table(headers, body)


def pools_of(rows: Iterable[TimelineRow]) -> list[str]:
    """Pools in the order the controller lists them, then any only the gateway saw."""
    rows = list(rows)
    ordered: dict[str, None] = {}
    for row in rows:
        ordered.update(dict.fromkeys(row.replicas))
    for row in rows:
        ordered.update(dict.fromkeys(row.share))
    return list(ordered)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(_cell(cell) for cell in cells) + " |"

    return [line(headers), "|" + "|".join("---" for _ in headers) + "|", *map(line, rows)]


def _cell(text: str) -> str:
    # A pipe would end the cell early and a newline the row.
    return text.replace("|", "\\|").replace("\n", " ")


def _with_unit(value: float | None, unit: str) -> str:
    text = _number(value)
    return text if value is None or not unit else f"{text} {unit}"


def _number(value: object) -> str:
    """Digits a reader can use: 3 significant ones, no exponent for everyday sizes."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    number = float(value)
    if not math.isfinite(number):
        return "—"
    if number == 0 or abs(number) >= 100:
        return f"{number:.0f}"
    if abs(number) < 0.001:
        return f"{number:.2g}"
    decimals = 2 - math.floor(math.log10(abs(number)))
    return f"{number:.{decimals}f}".rstrip("0").rstrip(".")


# --- timeline.png --------------------------------------------------------------------
