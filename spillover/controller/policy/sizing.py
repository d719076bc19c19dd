"""Replicas per pool: private first, the overflow to burst, cheapest marginal $ first."""

from __future__ import annotations

import math
from dataclasses import dataclass

from spillover.config import PoolConfig, SpilloverConfig
from spillover.controller.snapshot import PoolObservation
from spillover.private_loss import reserve_pool, reserve_replicas

STALLED_AFTER_COLD_STARTS = 3
"""A replica still starting after this many cold starts is not coming (no spot
capacity, an image that won't pull): the next pool covers for it."""


@dataclass(frozen=True)
class PoolTarget:
    """One pool's size for this tick, and why."""

    pool: str
    desired: int
    reason: str
    recent_targets: tuple[tuple[float, int], ...]
    unplaced_rps: float = 0.0
    """Demand left with nowhere to go once this pool is at its maximum."""
    reserve_replicas: int = 0
    """Replicas of `desired` kept warm as the failover reserve (not overflow)."""


def preference_order(config: SpilloverConfig) -> list[PoolConfig]:
    """Private pools first, then burst pools by price; spot before on-demand on a tie."""
    return sorted(
        config.pools,
        key=lambda pool: (
            pool.role != "private",
            pool.price.hourly_usd,
            pool.capacity_type != "spot",
        ),
    )


def stabilize(
    target: int, recent: tuple[tuple[float, int], ...], now: float, cooldown_s: float
) -> tuple[int, tuple[tuple[float, int], ...]]:
    """Grow at once; shrink only to the largest target of the cooldown window.

    Only targets that can still be the window's maximum are kept (each larger than
    every later one), so the state stays a few entries long whatever the window.
    """
    window = tuple((at, count) for at, count in recent if now - at < cooldown_s and count > target)
    window += ((now, target),)
    return window[0][1], window


def replicas_needed(rps: float, usable_per_replica: float) -> int:
    # The small slack keeps 2.0000001 replicas' worth from rounding up to 3.
    return max(0, math.ceil(rps / usable_per_replica - 1e-6))


def arriving(pool: PoolConfig, observation: PoolObservation, desired: int, now: float) -> int:
    """Replicas that serve or soon will: a private replica counts once ready (a
    starting one is a recovery that burst covers for), a burst one once asked for,
    unless it has stalled."""
    if pool.role == "private":
        return min(desired, observation.ready)
    stall_after = STALLED_AFTER_COLD_STARTS * pool.cold_start_seconds
    oldest = observation.oldest_starting_at
    if oldest is None or now - oldest <= stall_after:
        return desired  # none has stalled (skips a scan of every replica)
    stalled = sum(
        1
        for replica in observation.replicas
        if replica.phase == "starting" and now - replica.started_at > stall_after
    )
    return max(0, desired - stalled)


def size_pools(
    config: SpilloverConfig,
    pools: list[tuple[PoolConfig, PoolObservation, float, tuple[tuple[float, int], ...]]],
    planned_rps: float,
    now: float,
) -> list[PoolTarget]:
    """Place the planned demand on pools in preference order, each up to its target
    utilization; what a pool cannot take flows to the next. The reserve pool also keeps
    the failover reserve for the demand placed on private.

    `pools`: (config, observation, capacity per replica, recent targets) in
    preference order.
    """
    utilization = config.policy.target_utilization
    cooldown = config.policy.scale_down_cooldown_seconds
    holder = reserve_pool(config)
    remaining = planned_rps
    on_private = 0.0
    targets = []
    for pool, observation, capacity, recent in pools:
        usable = capacity * utilization
        needed = replicas_needed(remaining, usable)
        held = 0
        if holder is not None and pool.name == holder.name and math.isfinite(capacity):
            held = reserve_replicas(config, on_private, capacity)
        bounded = min(max(needed + held, pool.min_replicas), pool.max_replicas)
        desired, window = stabilize(bounded, recent, now, cooldown)
        reason = _sizing_reason(pool, remaining, needed, usable, capacity, utilization)
        if held:
            reason += (
                f"; +{held} warm as failover reserve for "
                f"{config.failover.reserve_share:.0%} of private's {on_private:.0f} rps"
            )
        if desired > bounded:
            reason += f"; shrinking to {bounded} waits: {desired} were needed within {cooldown:g} s"
        covered = arriving(pool, observation, desired, now) * usable
        unplaced = 0.0
        if needed > pool.max_replicas:
            unplaced = max(remaining - covered, 0.0)
        # The reserve is what stands by beyond the overflow: at max_replicas it may be none.
        standing_by = min(held, max(bounded - needed, 0))
        targets.append(PoolTarget(pool.name, desired, reason, window, unplaced, standing_by))
        if pool.role == "private":
            on_private += min(remaining, covered)
        remaining = max(remaining - covered, 0.0)
    return targets


def _sizing_reason(
    pool: PoolConfig,
    remaining: float,
    needed: int,
    usable: float,
    capacity: float,
    utilization: float,
) -> str:
    if remaining <= 0:
        side = "private" if pool.role == "private" else "cheaper pools"
        return f"no demand left for {pool.name}: {side} cover it; floor {pool.min_replicas}"
    share = "demand" if pool.role == "private" else "overflow"
    reason = (
        f"{share} {remaining:.0f} rps needs {needed} x {usable:.0f} rps "
        f"({utilization:.0%} of {capacity:.0f})"
    )
    if needed > pool.max_replicas:
        reason += f"; capped at max {pool.max_replicas}"
    elif needed < pool.min_replicas:
        reason += f"; floor {pool.min_replicas}"
    return reason
