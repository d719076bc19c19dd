"""What one controller tick costs at fleet scale: policy and ledger, no network.

A snapshot of many pools and replicas (10 private pools and the rest burst, spot
and on-demand), demand that moves every tick, the real `Policy.decide` and a real
SQLite ledger on disk. Observing and acting are left out: they are network calls
whose cost is the pools', not the controller's.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from spillover.config import SpilloverConfig, parse_config
from spillover.controller.ledger import Ledger, PoolUsage
from spillover.controller.policy import Policy, PolicyState
from spillover.controller.snapshot import PoolObservation, ReplicaObservation, Snapshot

GOAL_MS = 20.0


@dataclass(frozen=True)
class TickCost:
    policy_ms: list[float]
    ledger_ms: list[float]

    @property
    def total_ms(self) -> list[float]:
        return [p + q for p, q in zip(self.policy_ms, self.ledger_ms, strict=True)]


def fleet_config(pools: int, replicas_per_pool: int) -> SpilloverConfig:
    document = {
        "pools": [
            {
                "name": f"pool_{index}",
                "role": "private" if index < 10 else "burst",
                "capacity_type": "owned" if index < 10 else ("spot" if index % 2 else "on-demand"),
                "min_replicas": replicas_per_pool if index < 10 else 0,
                "max_replicas": replicas_per_pool,
                "capacity_rps": 100,
                "price": {"usd_per_replica_hour": 0.5 + index / 100, "source": "benchmark"},
            }
            for index in range(pools)
        ],
        "budget": {"max_burst_usd_per_hour": 5000},
    }
    return parse_config(document, "benchmark fleet")


def snapshot(config: SpilloverConfig, replicas_per_pool: int, at: float, demand: float) -> Snapshot:
    pools = tuple(
        PoolObservation(
            pool.name,
            tuple(
                ReplicaObservation(f"{pool.name}-{i}", "ready", at - 600)
                for i in range(replicas_per_pool)
            ),
            served_rps=demand / len(config.pools),
            queue_time_ms=2.0,
            service_rate_rps=100.0,
        )
        for pool in config.pools
    )
    return Snapshot(at=at, demand_rps=demand, pools=pools)


def run(pools: int = 100, replicas_per_pool: int = 10, ticks: int = 300) -> TickCost:
    config = fleet_config(pools, replicas_per_pool)
    policy = Policy(config)
    state = PolicyState()
    noise = random.Random(0)
    now = 1_800_000_000.0
    policy_ms, ledger_ms = [], []
    with tempfile.TemporaryDirectory() as work, Ledger(Path(work) / "bench.db") as ledger:
        for tick in range(ticks):
            now += config.policy.tick_seconds
            demand = 60_000 * (1 + 0.5 * noise.random())  # spills over private's 70k usable
            observed = snapshot(config, replicas_per_pool, now, demand)
            began = time.perf_counter()
            decisions, state = policy.decide(observed, state, now)
            decided = time.perf_counter()
            ledger.record(
                now,
                [
                    PoolUsage.of(pool, state.pools[pool.name].desired, tick * 100, tick)
                    for pool in config.pools
                ],
            )
            ledger.log_decisions(now, decisions[:5])
            ledger.save_controller_state(now, state.to_json(), "{}")
            recorded = time.perf_counter()
            policy_ms.append((decided - began) * 1000)
            ledger_ms.append((recorded - decided) * 1000)
    return TickCost(policy_ms, ledger_ms)


def report(cost: TickCost, pools: int, replicas: int) -> str:
    lines = [
        f"controller tick: {pools} pools, {pools * replicas} replicas, {len(cost.policy_ms)} ticks",
        f"{'part':<22}{'median ms':>10}{'p99 ms':>10}{'goal ms':>10}{'p99/goal':>10}",
    ]
    for name, values in (
        ("policy.decide", cost.policy_ms),
        ("ledger (record+state)", cost.ledger_ms),
        ("tick total", cost.total_ms),
    ):
        p99 = statistics.quantiles(values, n=100)[98]
        lines.append(
            f"{name:<22}{statistics.median(values):>10.2f}{p99:>10.2f}"
            f"{GOAL_MS:>10.0f}{p99 / GOAL_MS:>10.2f}"
        )
    return "\n".join(lines)
