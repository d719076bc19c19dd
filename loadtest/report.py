"""A load run or drill written down: checks with a verdict, figures, notes and a timeline.

``write_report`` makes one directory per run with three files: ``report.json`` (all of
it, for tools and for comparing runs), ``report.md`` (for the operator: verdict first,
then why) and ``timeline.png`` (the run second by second, every event marked).
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
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator
from matplotlib.transforms import blended_transform_factory

from loadtest.timeline import TimelineRow

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
TIMELINE_PNG = "timeline.png"

MODES = ("normal", "burst", "failover", "safe")
MODE_COLOURS = {
    "normal": "#4caf50",
    "burst": "#ff9800",
    "failover": "#e53935",
    "safe": "#9e9e9e",
}
POOL_COLOURS = {"private": "#1f77b4", "burst": "#ff7f0e"}
"""Fixed for the two usual pools so every report reads the same; others take the cycle."""
OTHER_COLOURS = ("#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")

EVENT_FONT_PT = 8.0
EVENT_LABEL_ROWS = 4
"""Rows of event labels above the first panel; the figure's top margin holds this many."""
EVENT_LABEL_CHARS = 48
"""Longer labels are cut: the full text is in report.md's events table."""

LOG_SCALE_RATIO = 30.0
"""Latency spanning more than this factor goes on a log axis: a 2 s failover spike would
otherwise flatten 20 ms steady state into the floor."""


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

    @property
    def verdict(self) -> Literal["pass", "fail"]:
        return "pass" if all(check.passed for check in self.checks) else "fail"


def write_report(report: Report, reports_dir: Path) -> Path:
    """Write report.json, report.md and timeline.png into a new directory; return it.

    The directory is ``<kind>-<UTC start YYYYmmddTHHMMSSZ>`` under reports_dir, with
    ``-2``, ``-3``... when runs start within the same second: never overwrite a report.
    """
    directory = _new_directory(Path(reports_dir), report)
    (directory / REPORT_JSON).write_text(
        json.dumps(report_to_json(report), indent=2, allow_nan=False) + "\n"
    )
    (directory / REPORT_MD).write_text(render_markdown(report))
    render_timeline_png(report, directory / TIMELINE_PNG)
    return directory


def read_report(directory: Path) -> Report:
    """The report a previous ``write_report`` left in directory (from its report.json)."""
    return report_from_json(json.loads((Path(directory) / REPORT_JSON).read_text()))


def _new_directory(reports_dir: Path, report: Report) -> Path:
    reports_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(report.started_at))
    base = f"{report.kind}-{stamp}"
    for attempt in range(1, 1000):
        directory = reports_dir / (base if attempt == 1 else f"{base}-{attempt}")
        try:
            # exist_ok=False: two runs finishing together each get their own directory.
            directory.mkdir()
        except FileExistsError:
            continue
        return directory
    raise FileExistsError(f"{reports_dir}: 999 reports named {base} already")


# --- report.json ---------------------------------------------------------------------


def report_to_json(report: Report) -> dict[str, Any]:
    """Everything in the report as strict JSON values (NaN and infinities become null)."""
    return _finite(
        {
            "kind": report.kind,
            "title": report.title,
            "verdict": report.verdict,
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
    )


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
    verdict = report.verdict.upper()
    passed = sum(check.passed for check in report.checks)
    lines = [
        f"# {report.title} — {verdict}",
        "",
        f"**{verdict}**: {passed} of {len(report.checks)} checks passed. "
        f"Started {_utc(report.started_at)}; p99 SLO {_number(report.slo_p99_ms)} ms.",
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
    pools = _pools(rows)
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


def _pools(rows: Iterable[TimelineRow]) -> list[str]:
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


def render_timeline_png(report: Report, path: Path) -> None:
    """Five panels sharing the t axis: rates, latency, pool share, ready replicas, mode.

    Built on a bare Figure with the Agg canvas rather than pyplot: Agg needs no screen,
    and a Figure that pyplot never registered is freed with its last reference, so
    reports in a long-running process neither leak figures nor touch a global backend.
    """
    figure = Figure(figsize=(10, 10), dpi=110)
    canvas = FigureCanvasAgg(figure)
    axes = figure.subplots(5, 1, sharex=True, height_ratios=[3, 3, 2, 2, 0.8])
    rows = report.timeline
    t_end = max([row.t + 1 for row in rows] + [event.t for event in report.events] + [1])
    _rates_panel(axes[0], rows)
    _latency_panel(axes[1], rows, report.slo_p99_ms)
    pools = _pools(rows)
    _share_panel(axes[2], rows, pools)
    _replicas_panel(axes[3], rows, pools)
    _mode_panel(axes[4], rows)
    for ax in axes:
        ax.set_xlim(0, t_end)
        ax.grid(True, axis="x", alpha=0.3)
    axes[-1].set_xlabel("seconds from t = 0")
    figure.suptitle(f"{report.title} — {report.verdict.upper()}", fontsize=13, y=0.99)
    # Room above the first panel for rows of event labels; fixed before the labels are
    # measured, since where they collide depends on the final layout.
    figure.subplots_adjust(left=0.08, right=0.83, top=0.88, bottom=0.05, hspace=0.18)
    _events(canvas.get_renderer(), axes, report.events)
    figure.savefig(path)


def _steps(rows: Sequence[TimelineRow], values: Sequence[float]) -> tuple[Any, Any]:
    """x and y for a post-step line covering every second [t, t + 1) up to the last."""
    x = np.array([row.t for row in rows] + [rows[-1].t + 1], dtype=float)
    y = np.array([*values, values[-1]], dtype=float)
    return x, y


def _no_data(ax: Axes, what: str) -> None:
    ax.text(
        0.5,
        0.5,
        f"no {what} data",
        transform=ax.transAxes,
        ha="center",
        va="center",
        color="0.5",
    )
    ax.set_yticks([])


def _legend(ax: Axes) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def _rates_panel(ax: Axes, rows: Sequence[TimelineRow]) -> None:
    ax.set_ylabel("requests/s")
    if not rows:
        _no_data(ax, "load")
        return
    series = [
        ("planned", [row.planned_rps for row in rows], "0.4", "--"),
        ("ok", [float(row.ok) for row in rows], "#2e7d32", "-"),
        ("failed", [float(row.failed) for row in rows], "#c62828", "-"),
    ]
    for label, values, colour, style in series:
        ax.step(*_steps(rows, values), where="post", label=label, color=colour, linestyle=style)
    # Filled, so a few failures stand out against hundreds of answers on the same axis.
    x, failed = _steps(rows, [float(row.failed) for row in rows])
    ax.fill_between(x, 0, failed, step="post", color="#c62828", alpha=0.3, linewidth=0)
    ax.set_ylim(bottom=0)
    _legend(ax)


def _latency_panel(ax: Axes, rows: Sequence[TimelineRow], slo_ms: float) -> None:
    ax.set_ylabel("latency ms")
    p50 = [math.nan if row.p50_ms is None else row.p50_ms for row in rows]
    p99 = [math.nan if row.p99_ms is None else row.p99_ms for row in rows]
    measured = [value for value in p50 + p99 if math.isfinite(value) and value > 0]
    if not measured:
        _no_data(ax, "latency")
        return
    ax.step(*_steps(rows, p50), where="post", label="p50", color="#1565c0")
    ax.step(*_steps(rows, p99), where="post", label="p99", color="#6a1b9a")
    ax.axhline(slo_ms, color="#c62828", linestyle="--", linewidth=1, label="p99 SLO")
    low, high = min([*measured, slo_ms]), max([*measured, slo_ms])
    if high / low > LOG_SCALE_RATIO:
        ax.set_yscale("log")
        # 10, 100, 1000 read faster than 10^1, 10^2, 10^3 for someone checking an SLO.
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    else:
        ax.set_ylim(bottom=0, top=high * 1.1)
    _legend(ax)


def _share_panel(ax: Axes, rows: Sequence[TimelineRow], pools: Sequence[str]) -> None:
    ax.set_ylabel("share %")
    shared = [pool for pool in pools if any(pool in row.share for row in rows)]
    if not shared:
        _no_data(ax, "gateway")
        return
    bottom = np.zeros(len(rows) + 1)
    for pool in shared:
        # A second without gateway data is a gap, not 0 %: NaN leaves it unfilled.
        share = [row.share.get(pool, 0.0) * 100 if row.share else math.nan for row in rows]
        x, y = _steps(rows, share)
        ax.fill_between(
            x, bottom, bottom + y, step="post", label=pool, color=_pool_colour(pool, pools)
        )
        bottom = bottom + np.nan_to_num(y)
    ax.set_ylim(0, 100)
    _legend(ax)


def _replicas_panel(ax: Axes, rows: Sequence[TimelineRow], pools: Sequence[str]) -> None:
    ax.set_ylabel("ready replicas")
    counted = [pool for pool in pools if any(pool in row.replicas for row in rows)]
    if not counted:
        _no_data(ax, "controller")
        return
    top = 1
    for pool in counted:
        ready = [float(row.replicas[pool]) if pool in row.replicas else math.nan for row in rows]
        top = max(top, *(int(value) for value in ready if math.isfinite(value)))
        ax.step(
            *_steps(rows, ready),
            where="post",
            label=pool,
            color=_pool_colour(pool, pools),
            linewidth=2,
        )
    ax.set_ylim(-0.2, top + 0.5)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    _legend(ax)


def _mode_panel(ax: Axes, rows: Sequence[TimelineRow]) -> None:
    ax.set_ylabel("mode", rotation=0, ha="right", va="center")
    ax.set_yticks([])
    spans = _mode_spans(rows)
    if not spans:
        _no_data(ax, "controller")
        return
    for mode, begin, end in spans:
        ax.axvspan(begin, end, color=MODE_COLOURS.get(mode, "#607d8b"), alpha=0.8, linewidth=0)
        ax.text((begin + end) / 2, 0.5, mode, ha="center", va="center", fontsize=8, clip_on=True)
    ax.set_ylim(0, 1)


def _mode_spans(rows: Sequence[TimelineRow]) -> list[tuple[str, int, int]]:
    """(mode, first second, end second) for each run of seconds in the same mode."""
    spans: list[tuple[str, int, int]] = []
    for row in rows:
        if row.mode is None:
            continue
        if spans and spans[-1][0] == row.mode and spans[-1][2] == row.t:
            spans[-1] = (row.mode, spans[-1][1], row.t + 1)
        else:
            spans.append((row.mode, row.t, row.t + 1))
    return spans


def _events(renderer: RendererAgg, axes: Sequence[Axes], events: Sequence[Event]) -> None:
    """A vertical line per event through every panel, its label above the first panel.

    Labels sit on rows, each on the lowest row where it overlaps no other label, so
    events seconds apart (t0 and its detection) stay readable. t0 events are placed
    first; a label with no room left is left out (its line stays) and counted in a
    note, since overprinted labels would hide the ones that did fit.
    """
    top = axes[0]
    label_at = blended_transform_factory(top.transData, top.transAxes)
    row_pixels = renderer.points_to_pixels(EVENT_FONT_PT * 1.5)
    row_height = row_pixels / top.get_window_extent(renderer).height
    placed: list[list[tuple[float, float]]] = [[] for _ in range(EVENT_LABEL_ROWS)]
    left_out = 0
    for event in sorted(events, key=lambda event: (not _is_t0(event), event.t)):
        colour = "#c62828" if _is_t0(event) else "0.35"
        for ax in axes:
            ax.axvline(
                event.t,
                color=colour,
                linestyle="-" if _is_t0(event) else ":",
                linewidth=1.6 if _is_t0(event) else 1.0,
            )
        label = event.label
        if len(label) > EVENT_LABEL_CHARS:
            label = label[: EVENT_LABEL_CHARS - 1] + "…"
        text = top.text(
            event.t,
            1.02,
            label,
            transform=label_at,
            ha="left",
            va="bottom",
            fontsize=EVENT_FONT_PT,
            color=colour,
            fontweight="bold" if _is_t0(event) else "normal",
            clip_on=False,
        )
        extent = text.get_window_extent(renderer)
        if extent.x1 > renderer.width:
            # An event near the end: its label runs leftwards from the line instead.
            text.set_horizontalalignment("right")
            extent = text.get_window_extent(renderer)
        span = (extent.x0 - 4, extent.x1 + 4)
        row = next(
            (
                index
                for index, taken in enumerate(placed)
                if all(span[1] < x0 or span[0] > x1 for x0, x1 in taken)
            ),
            None,
        )
        if row is None:
            text.remove()
            left_out += 1
            continue
        placed[row].append(span)
        text.set_y(1.02 + row * row_height)
    if left_out:
        top.text(
            1.01,
            1.02,
            f"+{left_out} more events\n(see report.md)",
            transform=top.transAxes,
            ha="left",
            va="bottom",
            fontsize=EVENT_FONT_PT,
            color="0.35",
        )


def _is_t0(event: Event) -> bool:
    return event.label.startswith("t0")


def _pool_colour(pool: str, pools: Sequence[str]) -> str:
    if pool in POOL_COLOURS:
        return POOL_COLOURS[pool]
    others = [name for name in pools if name not in POOL_COLOURS]
    return OTHER_COLOURS[others.index(pool) % len(OTHER_COLOURS)]
