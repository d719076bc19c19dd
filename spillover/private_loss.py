"""The failover reserve: warm burst replicas against a private-site loss, and what a
loss costs with them.

One arithmetic for the policy (which keeps the reserve warm), `spillover config check`
(which states the cost from the config's numbers) and `spillover status` (from the
measured demand), so the figure a user reads is the one the controller acts on. Pure
values from the config alone, outside the controller, because config check runs
without it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from spillover.config import PoolConfig, SpilloverConfig
from spillover.config_failover import HOURS_PER_MONTH


def reserve_pool(config: SpilloverConfig) -> PoolConfig | None:
    """The burst pool that holds the reserve: the cheapest, spot before on-demand."""
    burst = [pool for pool in config.pools if pool.role == "burst"]
    return min(
        burst, key=lambda pool: (pool.price.hourly_usd, pool.capacity_type != "spot"), default=None
    )


def reserve_rps(config: SpilloverConfig, private_rps: float) -> float:
    """Demand the reserve must be able to take at once if private is lost."""
    return config.failover.reserve_share * max(private_rps, 0.0)


def reserve_replicas(config: SpilloverConfig, private_rps: float, capacity_rps: float) -> int:
    """Replicas of the reserve pool the reserve needs, planned at target utilization
    like every other replica, within the pool's max_replicas."""
    pool = reserve_pool(config)
    wanted = reserve_rps(config, private_rps)
    if pool is None or wanted <= 0:
        return 0
    usable = capacity_rps * config.policy.target_utilization
    # The small slack keeps 2.0000001 replicas' worth from rounding up to 3.
    return min(math.ceil(wanted / usable - 1e-6), pool.max_replicas)


def warm_replicas(
    config: SpilloverConfig, private_rps: float, capacities: Mapping[str, float | None]
) -> dict[str, int]:
    """Burst replicas kept ready while private carries `private_rps`: every burst pool's
    min_replicas, and the reserve on the reserve pool."""
    warm = {pool.name: pool.min_replicas for pool in config.pools if pool.role == "burst"}
    pool = reserve_pool(config)
    capacity = capacities.get(pool.name) if pool is not None else None
    if pool is not None and capacity:
        warm[pool.name] = max(warm[pool.name], reserve_replicas(config, private_rps, capacity))
    return warm


@dataclass(frozen=True)
class PrivateLoss:
    """What losing the whole private site costs at one demand, and what the reserve
    that limits it costs."""

    private_rps: float
    """Demand private carries when it is lost."""
    warm_replicas: Mapping[str, int]
    """Ready burst replicas per pool when it happens."""
    warm_rps: float | None
    """Requests/s those replicas serve at full capacity; None while a capacity is unknown."""
    window_s: float
    """How long until more burst replicas serve: one controller tick to notice the loss,
    then the burst cold start."""
    failed_requests: float | None
    """Demand beyond the warm replicas, times the window; None while capacity is unknown."""
    usd_per_hour: float
    """Price of the warm replicas."""

    @property
    def usd_per_month(self) -> float:
        return self.usd_per_hour * HOURS_PER_MONTH

    def sentence(self) -> str:
        """The figure in words, as config check and status print it."""
        replicas = sum(self.warm_replicas.values())
        pools = ", ".join(f"{count} {name}" for name, count in self.warm_replicas.items() if count)
        reserve = (
            f"a reserve of {replicas} warm burst replica(s) ({pools}) costs "
            f"${self.usd_per_hour:.2f}/h, ${self.usd_per_month:.0f}/month"
            if replicas
            else "no burst replica is kept warm ($0/h)"
        )
        if math.isinf(self.window_s):
            loss = "a private loss fails every request until private is back (no burst pool)"
        elif self.failed_requests is None:
            loss = "a private loss fails an unknown number of requests (burst capacity not "
            loss += "measured yet)"
        elif self.failed_requests < 0.5:
            loss = f"the warm burst replicas ({self.warm_rps:.0f} rps) take it all: a private "
            loss += "loss fails no request"
        else:
            loss = (
                f"a private loss fails ~{self.failed_requests:.0f} requests over the "
                f"{self.window_s:g} s until more burst serves (a tick and the burst cold start)"
            )
        return f"at {self.private_rps:.0f} rps on private, {loss}; {reserve}"


def private_loss(
    config: SpilloverConfig, private_rps: float, capacities: Mapping[str, float | None]
) -> PrivateLoss:
    """The cost of a private loss at `private_rps`, with capacity per burst replica from
    `capacities` (configured or measured; None: unknown)."""
    warm = warm_replicas(config, private_rps, capacities)
    burst = [pool for pool in config.pools if pool.role == "burst"]
    grower = reserve_pool(config)
    # A reserve on a pool of unknown capacity has an unknown size: say so, never guess.
    reserving = grower is not None and reserve_rps(config, private_rps) > 0
    known = all(
        capacities.get(pool.name) or not (warm[pool.name] or (reserving and pool is grower))
        for pool in burst
    )
    warm_rps = (
        sum(warm[pool.name] * (capacities.get(pool.name) or 0.0) for pool in burst)
        if known
        else None
    )
    window = config.policy.tick_seconds + (grower.cold_start_seconds if grower else 0.0)
    failed = None if warm_rps is None else max(private_rps - warm_rps, 0.0) * window
    if grower is None:  # nothing can take over: the loss lasts as long as private is gone
        window, failed = math.inf, math.inf if private_rps > 0 else 0.0
    return PrivateLoss(
        private_rps=private_rps,
        warm_replicas=warm,
        warm_rps=warm_rps,
        window_s=window,
        failed_requests=failed,
        usd_per_hour=sum(warm[pool.name] * pool.price.hourly_usd for pool in burst),
    )
