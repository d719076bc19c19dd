"""Simulated pools for policy scenarios: replicas become ready one cold start after
they are asked for, and the snapshot reports what a real observer would."""

from __future__ import annotations

from dataclasses import dataclass, field

from spillover.config import SpilloverConfig, parse_config
from spillover.controller.decisions import Decision, ScalePool, SetWeights
from spillover.controller.policy import Policy, PolicyState
from spillover.controller.snapshot import PoolObservation, ReplicaObservation, Snapshot

START = 1_800_000_000.0  # a fixed epoch second: runs are reproducible


def scenario_config(**overrides: dict) -> SpilloverConfig:
    """Private 2 x 100 rps, spot burst 0-4 at $1/h, on-demand burst 0-4 at $3/h."""
    document: dict = {
        "pools": [
            {
                "name": "private",
                "role": "private",
                "capacity_type": "owned",
                "min_replicas": 2,
                "max_replicas": 2,
                "capacity_rps": 100,
                "cold_start_seconds": 10,
                "price": {"usd_per_replica_hour": 0.5, "source": "amortized"},
            },
            {
                "name": "spot",
                "role": "burst",
                "capacity_type": "spot",
                "max_replicas": 4,
                "capacity_rps": 100,
                "cold_start_seconds": 20,
                "price": {"usd_per_replica_hour": 1.0, "source": "spot"},
            },
            {
                "name": "ondemand",
                "role": "burst",
                "capacity_type": "on-demand",
                "max_replicas": 4,
                "capacity_rps": 100,
                "cold_start_seconds": 20,
                "price": {"usd_per_replica_hour": 3.0, "source": "on-demand"},
            },
        ],
        "policy": {"tick_seconds": 2, "scale_down_cooldown_seconds": 30},
    }
    for section, values in overrides.items():
        if section == "pools":
            for pool, changes in values.items():
                next(p for p in document["pools"] if p["name"] == pool).update(changes)
        else:
            document.setdefault(section, {}).update(values)
    return parse_config(document)


@dataclass
class SimulatedPool:
    name: str
    cold_start: float
    replicas: list[ReplicaObservation] = field(default_factory=list)
    broken: bool = False
    """Every replica fails (the private cluster is down)."""
    stuck: bool = False
    """New replicas never become ready (no spot capacity)."""
    metrics_down: bool = False
    """Triton's /metrics of every replica is unreachable (a firewall drops the metrics
    port); the gateway still routes to the replicas and health-checks them fine."""
    notices: dict[str, float] = field(default_factory=dict)
    """Replica -> when it is taken back (a spot interruption notice)."""
    scraped: dict[tuple[str, float], float] = field(default_factory=dict)
    """(replica, started_at) -> last successful metrics scrape."""

    def scale(self, count: int, now: float) -> None:
        """As the local driver converges: a draining replica does not count, and stays
        until its notice runs out; a replacement starts in a free name."""
        draining = [replica for replica in self.replicas if replica.phase == "draining"]
        alive = [
            replica for replica in self.replicas if replica.phase not in ("failed", "draining")
        ]
        while len(alive) < count:
            taken = {replica.name for replica in alive + draining}
            name = next(
                f"{self.name}-{i}" for i in range(len(taken) + 1) if f"{self.name}-{i}" not in taken
            )
            alive.append(ReplicaObservation(name, "starting", now))
        self.replicas = alive[:count] + draining

    def interrupt(self, name: str, seconds: float, now: float) -> None:
        """A notice: out of rotation now, gone in `seconds`."""
        self.notices[name] = now + seconds
        self.replicas = [
            ReplicaObservation(r.name, "draining", r.started_at) if r.name == name else r
            for r in self.replicas
        ]

    def advance(self, now: float) -> None:
        self.replicas = [
            self._phase(replica, now)
            for replica in self.replicas
            if not (replica.phase == "draining" and now >= self.notices[replica.name])
        ]
        for replica in self.replicas:
            if replica.phase == "ready" and not self.metrics_down:
                self.scraped[(replica.name, replica.started_at)] = now

    def metrics_age(self, now: float) -> float | None:
        """As the observer reports it: since the freshest scrape of a ready replica; one
        never scraped counts from when it was listed (started)."""
        last = [
            self.scraped.get((replica.name, replica.started_at), replica.started_at)
            for replica in self.replicas
            if replica.phase == "ready"
        ]
        return now - max(last) if last else None

    def _phase(self, replica: ReplicaObservation, now: float) -> ReplicaObservation:
        if replica.phase == "draining":
            return replica
        if self.broken:
            return ReplicaObservation(replica.name, "failed", replica.started_at)
        if replica.phase == "failed":  # repaired: the driver starts it again
            return ReplicaObservation(replica.name, "starting", now)
        if not self.stuck and now - replica.started_at >= self.cold_start:
            return ReplicaObservation(replica.name, "ready", replica.started_at)
        return replica


class Scenario:
    """Drive the policy tick by tick; apply its decisions to simulated pools."""

    def __init__(self, config: SpilloverConfig, running: dict[str, int] | None = None) -> None:
        self.config = config
        self.policy = Policy(config)
        self.now = START
        self.state = PolicyState()
        self.pools = {
            pool.name: SimulatedPool(pool.name, pool.cold_start_seconds) for pool in config.pools
        }
        for name, count in (running or {"private": 2}).items():
            self.pools[name].scale(count, self.now - 3600)
            self.pools[name].advance(self.now)
        self.weights: dict[str, int] = {}
        self.history: list[tuple[float, list[Decision], PolicyState]] = []
        self.spent_this_month = 0.0

    def tick(self, demand: float | None, seconds: float | None = None) -> list[Decision]:
        self.now += seconds if seconds is not None else self.config.policy.tick_seconds
        for pool in self.pools.values():
            pool.advance(self.now)
        snapshot = self.snapshot(demand)
        decisions, self.state = self.policy.decide(snapshot, self.state, self.now)
        for decision in decisions:
            if isinstance(decision, ScalePool):
                self.pools[decision.pool].scale(decision.replicas, self.now)
            elif isinstance(decision, SetWeights):
                self.weights = decision.shares
        self.history.append((self.now, decisions, self.state))
        return decisions

    def run(self, demand: float | None, seconds: float) -> None:
        ticks = round(seconds / self.config.policy.tick_seconds)
        for _ in range(ticks):
            self.tick(demand)

    def snapshot(self, demand: float | None) -> Snapshot:
        return Snapshot(
            at=self.now,
            demand_rps=demand,
            pools=tuple(
                PoolObservation(
                    name, tuple(pool.replicas), metrics_age_s=pool.metrics_age(self.now)
                )
                for name, pool in self.pools.items()
            ),
            weights=self.weights,
            burst_spend_this_month_usd=self.spent_this_month,
        )

    def desired(self, pool: str) -> int:
        return self.state.pools[pool].desired

    def ready(self, pool: str) -> int:
        return sum(1 for replica in self.pools[pool].replicas if replica.phase == "ready")

    def ready_capacity(self) -> float:
        """Requests/s all ready replicas serve at full utilization."""
        return sum(self.ready(pool.name) * (pool.capacity_rps or 0) for pool in self.config.pools)
