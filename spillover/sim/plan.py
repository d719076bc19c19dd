"""`spillover plan`: how many GPUs to own, and how much to rent.

Sweeps the owned pool's size (and the cheapest burst pool's warm floor) over a trace,
running the real controller on each, and names the cheapest configuration whose
requests meet the SLO. The break-even utilization says when owning pays: an owned GPU
costs its amortized price whether it serves or not, a burst replica only while it
runs, so owning is cheaper for the GPUs busy more than owned $/h ÷ burst $/h of the
time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from spillover.config import SpilloverConfig
from spillover.errors import SpilloverError
from spillover.sim import queueing
from spillover.sim.run import Progress, run
from spillover.sim.settings import SimSettings
from spillover.sim.traces import Trace


@dataclass(frozen=True)
class PlanPoint:
    owned: int
    warm_floor: int
    total_usd: float
    owned_usd: float
    burst_usd: float
    within_slo: float
    failed: float

    @property
    def meets_slo(self) -> bool:
        return self.within_slo >= queueing.SLO_QUANTILE


@dataclass(frozen=True)
class Plan:
    points: list[PlanPoint]
    owned_usd_per_gpu_hour: float
    burst_usd_per_replica_hour: dict[str, float]

    @property
    def break_even(self) -> dict[str, float]:
        """Per burst pool: the utilization above which an owned GPU is the cheaper one."""
        return {
            name: self.owned_usd_per_gpu_hour / price
            for name, price in self.burst_usd_per_replica_hour.items()
        }

    @property
    def cheapest_meeting_slo(self) -> PlanPoint | None:
        meeting = [point for point in self.points if point.meets_slo]
        return min(meeting, key=lambda point: point.total_usd) if meeting else None


def configure(config: SpilloverConfig, owned: int, warm_floor: int) -> SpilloverConfig:
    """The config with `owned` GPUs in its private pool and `warm_floor` replicas kept
    in its cheapest burst pool."""
    private = [pool for pool in config.pools if pool.role == "private"]
    burst = sorted(
        (pool for pool in config.pools if pool.role == "burst"), key=lambda p: p.price.hourly_usd
    )
    if len(private) != 1 or not burst:
        raise SpilloverError("plan needs a config with one private pool and a burst pool")
    pools = []
    for pool in config.pools:
        if pool is private[0]:
            pool = pool.model_copy(update={"min_replicas": owned, "max_replicas": max(owned, 1)})
        elif pool is burst[0]:
            floor = min(warm_floor, pool.max_replicas)
            pool = pool.model_copy(update={"min_replicas": floor})
        pools.append(pool)
    return config.model_copy(update={"pools": pools})


def sweep(
    config: SpilloverConfig,
    settings: SimSettings,
    trace: Trace,
    owned: list[int],
    floors: list[int],
    work_dir: Path,
    progress: Progress | None = None,
) -> Plan:
    points = []
    for count in owned:
        for floor in floors:
            name = f"owned {count}, floor {floor}"
            chosen = configure(config, count, floor)
            ledger = work_dir / f"plan-owned-{count}-floor-{floor}.db"
            result = run(name, chosen, settings, trace, ledger, progress=progress)
            private = sum(
                result.cost_by_pool.get(p.name, 0.0) for p in chosen.pools if p.role == "private"
            )
            arrived = result.totals.arrived or 1.0
            points.append(
                PlanPoint(
                    owned=count,
                    warm_floor=floor,
                    total_usd=result.total_cost,
                    owned_usd=private,
                    burst_usd=result.total_cost - private,
                    within_slo=result.totals.within_slo / arrived,
                    failed=result.totals.failed,
                )
            )
    private_pool = next(pool for pool in config.pools if pool.role == "private")
    owned_hourly = private_pool.price.hourly_usd / private_pool.price.gpus_per_replica
    burst = {p.name: p.price.hourly_usd for p in config.pools if p.role == "burst"}
    return Plan(points, owned_hourly, burst)


def render_markdown(plan: Plan, trace: Trace, command: str) -> str:
    best = plan.cheapest_meeting_slo
    headline = (
        f"own {best.owned} GPUs, keep {best.warm_floor} burst replicas warm: "
        f"${best.total_usd:,.0f} over the trace"
        if best
        else "no configuration swept meets the SLO"
    )
    lines = [
        f"# Capacity plan: {headline}\n",
        f"`{command}`\n",
        f"Trace: {trace.name}, {trace.seconds:,} s. A configuration meets the SLO when "
        f"{queueing.SLO_QUANTILE:.0%} of its requests are within it.\n",
        "Break-even utilization (owned $/GPU-hour ÷ burst $/replica-hour): an owned GPU at "
        f"${plan.owned_usd_per_gpu_hour:.3f}/h pays for itself when it is busy more than "
        + ", ".join(
            f"{share:.0%} of the time against {name} (${price:.3f}/h)"
            for (name, share), price in zip(
                plan.break_even.items(), plan.burst_usd_per_replica_hour.values(), strict=True
            )
        )
        + ".\n",
        "| owned GPUs | warm floor | total $ | owned $ | burst $ | within SLO | failed "
        "| meets SLO |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in plan.points:
        mark = "**yes (cheapest)**" if p is best else ("yes" if p.meets_slo else "no")
        lines.append(
            f"| {p.owned} | {p.warm_floor} | {p.total_usd:,.0f} | {p.owned_usd:,.0f} | "
            f"{p.burst_usd:,.0f} | {p.within_slo:.4%} | {p.failed:,.0f} | {mark} |"
        )
    return "\n".join(lines) + "\n"
