"""The simulator's report: the comparison table, the goals' verdict, report.json/.md.

Like the drills' reports: a directory per run with report.json (everything), report.md
(verdict and table first) and PNGs (`spillover.sim.plot`, when matplotlib is there).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spillover.sim.baselines import LowerBound
from spillover.sim.run import RunResult
from spillover.sim.traces import Trace

COST_VS_LOWER_BOUND = 1.10
COST_VS_CLOUD_ON_DEMAND = 0.5


@dataclass(frozen=True)
class Row:
    name: str
    total_usd: float
    by_pool: dict[str, float]
    usd_per_1k: float
    within_slo: float
    seconds_meeting_slo: float
    failed: float
    scale_events: int
    modes: dict[str, float]
    vs_lower_bound: float
    interruptions: int


def rows(results: list[RunResult], bound: LowerBound) -> list[Row]:
    table = []
    for result in results:
        totals = result.totals
        arrived = totals.arrived or 1.0
        modes = {
            mode: seconds / result.seconds for mode, seconds in sorted(result.mode_seconds.items())
        }
        table.append(
            Row(
                name=result.name,
                total_usd=result.total_cost,
                by_pool=result.cost_by_pool,
                usd_per_1k=result.total_cost / arrived * 1000,
                within_slo=totals.within_slo / arrived,
                seconds_meeting_slo=totals.seconds_meeting_slo / result.seconds,
                failed=totals.failed,
                scale_events=result.scale_events,
                modes=modes,
                vs_lower_bound=result.total_cost / bound.total_cost
                if bound.total_cost
                else float("inf"),
                interruptions=totals.interruptions,
            )
        )
    return table


def verdict(table: list[Row]) -> list[tuple[str, bool | None, str]]:
    """Each goal: (goal, met; None when a run it compares with is missing, measured)."""
    named = {row.name: row for row in table}
    ours = named.get("spillover")
    if ours is None:
        return []
    goals: list[tuple[str, bool | None, str]] = [
        (
            f"cost <= {COST_VS_LOWER_BOUND:.2f}x the lower bound",
            ours.vs_lower_bound <= COST_VS_LOWER_BOUND,
            f"{ours.vs_lower_bound:.3f}x",
        )
    ]
    cloud = named.get("cloud on-demand")
    goals.append(
        (
            f"cost <= {COST_VS_CLOUD_ON_DEMAND}x cloud-only on-demand",
            None if cloud is None else ours.total_usd <= COST_VS_CLOUD_ON_DEMAND * cloud.total_usd,
            "no on-demand pool" if cloud is None else f"{ours.total_usd / cloud.total_usd:.3f}x",
        )
    )
    reactive = named.get("reactive (HPA)")
    if reactive is not None:
        better = ours.within_slo > reactive.within_slo and ours.total_usd <= reactive.total_usd
        goals.append(
            (
                "better SLO attainment than reactive at no more than its cost",
                better,
                f"within SLO {ours.within_slo:.4%} vs {reactive.within_slo:.4%}, "
                f"cost {ours.total_usd / reactive.total_usd:.3f}x",
            )
        )
    return goals


def markdown_table(table: list[Row], bound: LowerBound) -> str:
    pools = sorted({pool for row in table for pool in row.by_pool} | set(bound.cost_by_pool))
    modes = sorted({mode for row in table for mode in row.modes})
    header = (
        [
            "run",
            "total $",
            *[f"{p} $" for p in pools],
            "$/1k req",
            "within SLO",
            "failed",
            "scale events",
        ]
        + [f"{m} time" for m in modes]
        + ["vs lower bound"]
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table:
        cells = [
            row.name,
            f"{row.total_usd:,.0f}",
            *[f"{row.by_pool.get(p, 0.0):,.0f}" for p in pools],
            f"{row.usd_per_1k:.5f}",
            f"{row.within_slo:.4%}",
            f"{row.failed:,.0f}",
            f"{row.scale_events:,}",
            *[f"{row.modes.get(m, 0.0):.1%}" for m in modes],
            f"{row.vs_lower_bound:.3f}x",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    bound_cells = ["lower bound (perfect foresight)", f"{bound.total_cost:,.0f}"]
    bound_cells += [f"{bound.cost_by_pool.get(p, 0.0):,.0f}" for p in pools]
    bound_cells += ["", "100% (by construction)", "0", ""] + [""] * len(modes) + ["1.000x"]
    lines.append("| " + " | ".join(bound_cells) + " |")
    return "\n".join(lines) + "\n"


def render_markdown(trace: Trace, table: list[Row], bound: LowerBound, command: str) -> str:
    goals = verdict(table)
    met = [ok for _, ok, _ in goals if ok is not None]
    headline = "all goals met" if met and all(met) else f"{sum(met)} of {len(met)} goals met"
    parts = [
        f"# Fleet simulation: {headline}\n",
        f"`{command}`\n",
        f"Trace: {trace.name}, {trace.seconds:,} s.\n",
    ]
    parts += [
        f"- {'MET' if ok else 'n/a' if ok is None else 'MISSED'}: {goal} ({measured})"
        for goal, ok, measured in goals
    ]
    parts += ["", markdown_table(table, bound)]
    parts.append(
        "Cost is what the controller's spend ledger charged each run (replica-seconds of "
        "ready, starting and draining replicas at the price in force). Within SLO: share "
        "of requests answered within the p99 latency target (M/D/c model); failed: "
        "requests that found no ready capacity or a saturated pool.\n"
    )
    return "\n".join(parts)


def to_json(
    trace: Trace, results: list[RunResult], table: list[Row], bound: LowerBound, command: str
) -> dict[str, Any]:
    return {
        "command": command,
        "trace": {"name": trace.name, "start": trace.start, "seconds": trace.seconds},
        "lower_bound": {"total_usd": bound.total_cost, "by_pool": bound.cost_by_pool},
        "goals": [{"goal": g, "met": ok, "measured": m} for g, ok, m in verdict(table)],
        "runs": [
            {
                **row.__dict__,
                "cost_by_role": result.cost_by_role,
                "ledger": str(result.ledger_path) if result.ledger_path else None,
                "wall_seconds": result.wall_seconds,
                "arrived": result.totals.arrived,
                "served": result.totals.served,
                "series_per_minute": {
                    "demand_rps": result.series.demand,
                    "failed_rps": result.series.failed,
                    "p99_ms": result.series.p99_ms,
                    "cost_usd_per_hour": result.series.cost_usd_per_hour,
                    "capacity_rps": result.series.capacity,
                    "running": result.series.running,
                },
            }
            for row, result in zip(table, results, strict=True)
        ],
    }


def new_directory(reports_dir: Path, kind: str = "sim") -> Path:
    reports_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for attempt in range(1, 1000):
        directory = reports_dir / (
            f"{kind}-{stamp}" if attempt == 1 else f"{kind}-{stamp}-{attempt}"
        )
        try:
            directory.mkdir()
        except FileExistsError:
            continue
        return directory
    raise FileExistsError(f"{reports_dir}: 999 reports named {kind}-{stamp} already")


def write(directory: Path, document: dict[str, Any], markdown: str) -> None:
    (directory / "report.json").write_text(
        json.dumps(document, indent=1, allow_nan=False, default=_finite) + "\n"
    )
    (directory / "report.md").write_text(markdown)


def _finite(value: object) -> object:
    raise TypeError(f"not JSON: {value!r}")
