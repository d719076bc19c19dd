"""One simulated run: the real controller loop on the simulated clock, against the world.

Each second: the world's events (faults, prices, cold starts ending, interruptions);
every `policy.tick_seconds`, `ControllerLoop.tick()` -- observe → decide → act →
record, with the real Policy, real Actuators over the registry's simulated drivers,
and the real Ledger in a SQLite file -- then the second's demand is routed and served.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from spillover.config import PoolConfig, SpilloverConfig
from spillover.controller.actuators import Actuators
from spillover.controller.decisions import ScalePool
from spillover.controller.ledger import Ledger
from spillover.controller.loop import ControllerLoop
from spillover.controller.policy import Policy
from spillover.drivers.registry import DriverContext, build_drivers
from spillover.drivers.simulated import SimulatedPool
from spillover.sim.reactive import ReactiveAutoscaler
from spillover.sim.settings import SimSettings
from spillover.sim.traces import Trace
from spillover.sim.world import MinuteSeries, SecondTotals, SimObserver, World


@dataclass
class RunResult:
    name: str
    totals: SecondTotals
    series: MinuteSeries
    cost_by_pool: dict[str, float]
    cost_by_role: dict[str, float]
    scale_events: int
    mode_seconds: dict[str, float]
    seconds: int
    ledger_path: Path | None = None
    wall_seconds: float = 0.0

    @property
    def total_cost(self) -> float:
        return sum(self.cost_by_pool.values())


@dataclass
class Progress:
    """Called once per simulated hour with (run name, seconds done, seconds in all)."""

    report: Callable[[str, int, int], None] = field(default=lambda name, done, total: None)


def simulated(config: SpilloverConfig) -> SpilloverConfig:
    """The same config with every pool on the simulated driver."""
    pools = [
        pool.model_copy(update={"driver": "simulated", "kubernetes": None}) for pool in config.pools
    ]
    return config.model_copy(update={"pools": pools})


def run(
    name: str,
    config: SpilloverConfig,
    settings: SimSettings,
    trace: Trace,
    ledger_path: Path,
    decider: str = "policy",
    progress: Progress | None = None,
    each_second: Callable[[World, int], None] | None = None,
) -> RunResult:
    """Simulate `trace` under `config`; decider "policy" (spillover) or "reactive" (HPA)."""
    import time

    began = time.perf_counter()
    ledger_path.unlink(missing_ok=True)
    # The ledger is written every tick; in memory-backed /dev/shm (where there is one)
    # that costs no disk writes, and the finished file is moved to `ledger_path`.
    working = _scratch(ledger_path)
    world, loop = assemble(
        config, settings, trace, Ledger(working, config.controller.ledger_window_seconds), decider
    )
    ledger = loop.ledger
    config = loop.config
    tick_every = max(1, round(config.policy.tick_seconds))
    last_desired: dict[str, int] = {}
    scale_events = 0
    mode_seconds: dict[str, float] = {}
    rps = trace.rps
    total = len(rps)
    for second in range(total):
        world.begin_second(second)
        if second % tick_every == 0:
            report = loop.tick()
            for decision in report.decisions:
                if isinstance(decision, ScalePool):
                    previous = last_desired.get(decision.pool)
                    if previous is not None and previous != decision.replicas:
                        scale_events += 1
                    last_desired[decision.pool] = decision.replicas
            mode = loop.state.mode.value
            mode_seconds[mode] = mode_seconds.get(mode, 0.0) + tick_every
        world.serve(second, rps[second])
        if each_second is not None:
            each_second(world, second)
        if progress is not None and (second + 1) % 3600 == 0:
            progress.report(name, second + 1, total)
    end = trace.start + total
    world.now = end
    loop.tick()  # one more tick at the end charges the last interval to the ledger
    cost_by_pool = {row.key: row.usd for row in ledger.spend(trace.start, end, by="pool")}
    cost_by_role = {row.key: row.usd for row in ledger.spend(trace.start, end, by="role")}
    ledger.close()
    if working != ledger_path:
        shutil.move(working, ledger_path)
        for suffix in ("-wal", "-shm"):
            Path(f"{working}{suffix}").unlink(missing_ok=True)
    return RunResult(
        name=name,
        totals=world.totals,
        series=world.series,
        cost_by_pool={str(k): v for k, v in cost_by_pool.items()},
        cost_by_role={str(k): v for k, v in cost_by_role.items()},
        scale_events=scale_events,
        mode_seconds=mode_seconds,
        seconds=total,
        ledger_path=ledger_path,
        wall_seconds=time.perf_counter() - began,
    )


def assemble(
    config: SpilloverConfig,
    settings: SimSettings,
    trace: Trace,
    ledger: Ledger,
    decider: str = "policy",
) -> tuple[World, ControllerLoop]:
    """The world and the controller loop that runs against it, ready for second 0."""
    config = simulated(config)
    drivers = build_drivers(config.pools, DriverContext(run_dir=ledger.path.parent))
    pools = {pool: driver for pool, driver in drivers.items() if isinstance(driver, SimulatedPool)}
    world = World(config, settings, pools, trace.start, trace.rps[0] if trace.seconds else 0.0)
    # The gateway actuator is the simulated one (the same set_weights call).
    actuators = Actuators(drivers, world.gateway, sleep=lambda seconds: None)  # type: ignore[arg-type]
    observer = SimObserver(world)
    # The stack has run for a while before the trace starts: the first tick sees the
    # first second's demand, as a controller that has been observing would.
    observer.prime(trace.rps[0] if trace.seconds else 0.0, config.policy.tick_seconds)
    loop = ControllerLoop(config, observer, actuators, ledger, clock=world.clock)
    if decider == "reactive":
        loop.policy = ReactiveAutoscaler(config)  # type: ignore[assignment]

    def new_price(pool_name: str, price: float) -> None:
        updated = _repriced(loop.config, pool_name, price)
        loop.config = updated
        if decider == "policy":
            loop.policy = Policy(updated)
        world.config = updated

    world.on_price = new_price
    return world, loop


SCRATCH = Path("/dev/shm")


def _scratch(ledger_path: Path) -> Path:
    if not SCRATCH.is_dir():
        return ledger_path
    handle, name = tempfile.mkstemp(prefix="spillover-sim-", suffix=".db", dir=SCRATCH)
    os.close(handle)
    Path(name).unlink()
    return Path(name)


def _repriced(config: SpilloverConfig, pool_name: str, price: float) -> SpilloverConfig:
    pools = []
    for pool in config.pools:
        if pool.name == pool_name and not math.isclose(pool.price.hourly_usd, price):
            pool = _with_price(pool, price)
        pools.append(pool)
    return config.model_copy(update={"pools": pools})


def _with_price(pool: PoolConfig, price: float) -> PoolConfig:
    source = pool.price.source.split(" @ ")[0]
    new_price = pool.price.model_copy(
        update={
            "usd_per_replica_hour": price,
            "amortized": None,
            "source": f"{source} @ simulated series",
        }
    )
    return pool.model_copy(update={"price": new_price})
