"""`spillover bench sim`: how fast the simulator runs the real controller.

Two figures, each against a goal (printed, not asserted: this machine is shared):

- a week of the packaged trace at 1 s for the packaged 3-pool fleet: wall seconds,
  simulated seconds per wall second (goal: the week in under 60 s);
- one controller tick (observe → decide → act → record, ledger included) with 100
  pools of 100 replicas each: median and worst milliseconds (goal: under 20 ms).

Memory: the run keeps per-minute aggregates and running totals, never per-request
records; the peak resident size is printed to show it stays flat in the trace's length.
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from pathlib import Path

from spillover.config import SpilloverConfig, load_config, parse_config
from spillover.controller.ledger import Ledger
from spillover.sim.cli import packaged_fleet
from spillover.sim.run import assemble, run
from spillover.sim.settings import SimSettings
from spillover.sim.traces import DAY, flat, shop_week

WEEK_GOAL_S = 60.0
TICK_GOAL_MS = 20.0


def wide_fleet(pools: int = 100, replicas: int = 100) -> SpilloverConfig:
    """One owned pool and `pools - 1` burst pools (spot and on-demand in turn), each
    running `replicas` from the start."""
    document: dict = {"pools": []}
    for index in range(pools):
        private = index == 0
        kind = "owned" if private else ("spot" if index % 2 else "on-demand")
        document["pools"].append(
            {
                "name": f"pool_{index}",
                "role": "private" if private else "burst",
                "capacity_type": kind,
                "min_replicas": replicas,
                "max_replicas": replicas * 2,
                "capacity_rps": 200,
                "cold_start_seconds": 15 if private else 215,
                "price": {
                    "usd_per_replica_hour": 0.4 if private else 0.45 + 0.01 * index,
                    "source": "bench",
                },
            }
        )
    return parse_config(document)


def bench_week(days: float) -> dict[str, float]:
    config = load_config(packaged_fleet())
    trace = shop_week(days=days)
    cpu_began = time.process_time()
    with tempfile.TemporaryDirectory(prefix="spillover-bench-sim-") as work:
        result = run("spillover", config, SimSettings(), trace, Path(work) / "ledger.db")
    return {
        "simulated_s": trace.seconds,
        "wall_s": result.wall_seconds,
        "cpu_s": time.process_time() - cpu_began,
        "simulated_s_per_wall_s": trace.seconds / result.wall_seconds,
        "week_wall_s_projected": 7 * DAY / (trace.seconds / result.wall_seconds),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def bench_tick(pools: int, replicas: int, ticks: int) -> dict[str, float]:
    config = wide_fleet(pools, replicas)
    # Just under what every pool's floor serves at the policy's target utilization: the
    # policy keeps each pool at `replicas`, all of them ready and serving.
    demand = pools * replicas * 200 * config.policy.target_utilization * 0.99
    trace = flat(demand, ticks * 2 + 2)
    with tempfile.TemporaryDirectory(prefix="spillover-bench-tick-") as work:
        ledger = Ledger(Path(work) / "ledger.db", config.controller.ledger_window_seconds)
        world, loop = assemble(config, SimSettings(), trace, ledger)
        durations = []
        for second in range(trace.seconds):
            world.begin_second(second)
            if second % 2 == 0:
                began = time.perf_counter()
                loop.tick()
                durations.append((time.perf_counter() - began) * 1000)
            world.serve(second, trace.rps[second])
        ledger.close()
    replicas_running = sum(driver.running for driver in world.drivers.values())
    return {
        "pools": pools,
        "replicas": replicas_running,
        "ticks": len(durations),
        "median_ms": statistics.median(durations),
        "worst_ms": max(durations),
    }


def report(week: dict[str, float], tick: dict[str, float]) -> str:
    week_ok = week["week_wall_s_projected"] <= WEEK_GOAL_S
    tick_ok = tick["median_ms"] <= TICK_GOAL_MS
    return "\n".join(
        [
            f"week, 3-pool fleet: {week['simulated_s']:,.0f} simulated s in "
            f"{week['wall_s']:.1f} wall s ({week['cpu_s']:.1f} s of CPU) = "
            f"{week['simulated_s_per_wall_s']:,.0f} simulated s per wall s; a week takes "
            f"{week['week_wall_s_projected']:.0f} s (goal < {WEEK_GOAL_S:.0f} s: "
            f"{'met' if week_ok else 'missed'}); peak RSS {week['peak_rss_mib']:.0f} MiB",
            f"tick, {tick['pools']:.0f} pools / {tick['replicas']:,.0f} replicas: median "
            f"{tick['median_ms']:.1f} ms, worst {tick['worst_ms']:.1f} ms over {tick['ticks']:.0f} "
            f"ticks (goal < {TICK_GOAL_MS:.0f} ms: {'met' if tick_ok else 'missed'})",
        ]
    )
