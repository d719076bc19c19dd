"""timeline.png: a run second by second in five stacked panels sharing the time axis,
with the drill's events marked. matplotlib (Agg, no screen) is imported only here, so
commands that never draw a report start without it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator
from matplotlib.transforms import blended_transform_factory

from loadtest.report import Event, Report, pools_of
from loadtest.timeline import TimelineRow

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
    pools = pools_of(rows)
    _share_panel(axes[2], rows, pools)
    _replicas_panel(axes[3], rows, pools)
    _mode_panel(axes[4], rows)
    for ax in axes:
        ax.set_xlim(0, t_end)
        ax.grid(True, axis="x", alpha=0.3)
    axes[-1].set_xlabel("seconds from t = 0")
    figure.suptitle(f"{report.title} — {report.verdict_text}", fontsize=13, y=0.99)
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
