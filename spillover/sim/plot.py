"""The simulator's PNGs (matplotlib, from the `plot` extra; only this module imports it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from spillover.sim.run import RunResult


def render(results: list[RunResult], slo_ms: float, directory: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    ours = next((r for r in results if r.name == "spillover"), results[0])
    hours = [minute / 60 for minute in range(len(ours.series.demand))]

    figure, axes = plt.subplots(figsize=(12, 4.5))
    axes.plot(hours, ours.series.demand, color="black", linewidth=0.8, label="demand")
    bottom = [0.0] * len(hours)
    for pool, capacity in ours.series.capacity.items():
        top = [b + c for b, c in zip(bottom, capacity, strict=True)]
        axes.fill_between(
            hours, bottom, top, alpha=0.35, step="post", label=f"{pool} ready capacity"
        )
        bottom = top
    axes.set(
        xlabel="hours from the trace start",
        ylabel="requests/s",
        title=f"{ours.name}: demand vs ready capacity by pool",
    )
    axes.legend(loc="upper right")
    written.append(_save(figure, directory / "capacity.png"))

    figure, axes = plt.subplots(figsize=(12, 4.5))
    _each_run(axes, hours, results, lambda result: result.series.cost_usd_per_hour)
    axes.set(xlabel="hours from the trace start", ylabel="$ per hour", title="cost rate over time")
    axes.legend(loc="upper right")
    written.append(_save(figure, directory / "cost.png"))

    figure, axes = plt.subplots(figsize=(12, 4.5))
    _each_run(axes, hours, results, lambda result: result.series.p99_ms)
    axes.axhline(slo_ms, color="red", linestyle="--", label=f"SLO p99 {slo_ms:g} ms")
    axes.set_yscale("log")
    axes.set(
        xlabel="hours from the trace start",
        ylabel="worst pool p99, ms (per minute)",
        title="latency vs SLO",
    )
    axes.legend(loc="upper right")
    written.append(_save(figure, directory / "latency.png"))
    return written


def _each_run(
    axes: Any, hours: list[float], results: list[RunResult], values: Callable[[RunResult], Any]
) -> None:
    """One line per run of a per-minute series (runs may stop short of the longest)."""
    for result in results:
        series = values(result)
        axes.plot(hours[: len(series)], series, linewidth=0.8, label=result.name)


def _save(figure: Any, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    import matplotlib.pyplot as plt

    plt.close(figure)
    return path


def render_plan(points: list[Any], path: Path) -> Path:
    """Cost against owned GPUs, one line per warm floor; SLO attainment on its own axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, cost_axis = plt.subplots(figsize=(9, 4.5))
    slo_axis = cost_axis.twinx()
    for floor in sorted({point.warm_floor for point in points}):
        mine = sorted((p for p in points if p.warm_floor == floor), key=lambda p: p.owned)
        owned = [p.owned for p in mine]
        cost_axis.plot(owned, [p.total_usd for p in mine], marker="o", label=f"cost, floor {floor}")
        slo_axis.plot(
            owned,
            [100 * p.within_slo for p in mine],
            linestyle=":",
            marker="x",
            label=f"within SLO, floor {floor}",
        )
    cost_axis.set(xlabel="owned GPUs", ylabel="total $ over the trace", title="capacity plan")
    slo_axis.set_ylabel("% of requests within the SLO")
    handles = cost_axis.get_legend_handles_labels()
    more = slo_axis.get_legend_handles_labels()
    cost_axis.legend(handles[0] + more[0], handles[1] + more[1], loc="upper center")
    return _save(figure, path)
