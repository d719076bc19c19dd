"""``report.md``: a report for the operator, verdict first, then why; for a drill with a
control run, the two side by side, then the control's own events and timeline."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np

from loadtest.report import (
    CONTROL_TIMELINE_PNG,
    TIMELINE_PNG,
    Check,
    Report,
    finite,
    pools_of,
    utc_text,
)
from loadtest.timeline import TimelineRow


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
        + f". Started {utc_text(report.started_at)}; p99 SLO {_number(report.slo_p99_ms)} ms.",
        "",
    ]
    lines += _control_summary(report)
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
        lines += _figures_table(report)
        lines.append("")
    lines += _run_sections(report, "##", TIMELINE_PNG)
    if report.control is not None:
        control = report.control
        lines += [f"## Control run: {control.title} — {control.verdict_text}", ""]
        lines += [_summary(control.checks), ""] if control.checks else []
        lines += _run_sections(control, "###", CONTROL_TIMELINE_PNG)
    return "\n".join(lines)


def _run_sections(report: Report, level: str, timeline_png: str) -> list[str]:
    """A run's notes, events, timeline and settings, under headings of `level`."""
    lines: list[str] = []
    if report.notes:
        lines += [f"{level} Notes", ""] + [f"- {note}" for note in report.notes] + [""]
    if report.events:
        lines += [f"{level} Events", ""]
        lines += _table(
            ["t (s)", "Event"], [[_number(event.t), event.label] for event in report.events]
        )
        lines.append("")
    lines += [f"{level} Timeline", "", f"![timeline]({timeline_png})", ""]
    if report.timeline:
        lines += _timeline_table(report.timeline) + [""]
    else:
        lines += ["No per-second data was recorded.", ""]
    if report.settings:
        lines += [f"{level} Settings", "", "```json", json.dumps(finite(report.settings), indent=2)]
        lines += ["```", ""]
    return lines


def _control_summary(report: Report) -> list[str]:
    """What the control showed, and the checks of both runs side by side."""
    if report.control_skipped is not None:
        return [
            f"**No control run**: {report.control_skipped}. This verdict says the "
            "mechanism held, not that the drill could have failed without it.",
            "",
        ]
    control = report.control
    if control is None:
        return []
    must_fail = ", ".join(report.control_must_fail)
    misses = report.control_misses
    text = (
        f"**Control: {control.verdict_text}**. {control.title}: the same drill with the "
        f"mechanism it tests turned off must fail {must_fail}. "
    )
    if misses:
        text += "It did not: " + "; ".join(misses) + ". The drill could not have failed."
    else:
        text += "It failed every one, so the drill can fail and its checks mean something."
    rows = []
    judged = {check.name: check for check in control.checks}
    names = [check.name for check in report.checks]
    names += [name for name in judged if name not in names]
    treated = {check.name: check for check in report.checks}
    for name in names:
        first = treated.get(name) or judged[name]
        rows.append(
            [
                name,
                f"{first.op} {_with_unit(first.threshold, first.unit)}",
                _judged(treated.get(name)),
                _judged(judged.get(name)),
                "yes" if name in report.control_must_fail else "",
            ]
        )
    return [
        text,
        "",
        "## Treatment and control",
        "",
        *_table(["Check", "Goal", "Treatment", "Control", "Control must fail"], rows),
        "",
    ]


def _judged(check: Check | None) -> str:
    if check is None:
        return "—"
    return f"{_with_unit(check.value, check.unit)} {'pass' if check.passed else '**FAIL**'}"


def _figures_table(report: Report) -> list[str]:
    if report.control is None:
        return _table(
            ["Figure", "Value"], [[name, _number(value)] for name, value in report.figures.items()]
        )
    control = report.control.figures
    names = list(report.figures) + [name for name in control if name not in report.figures]
    return _table(
        ["Figure", "Treatment", "Control"],
        [[name, _number(report.figures.get(name)), _number(control.get(name))] for name in names],
    )


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
