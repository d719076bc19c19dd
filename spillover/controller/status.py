"""What `spillover status` shows, built once per tick from what the loop has.

Stored by the loop with the policy state, so `spillover status` works from another
process, and still tells the truth (with its age) when the controller has stopped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spillover.config import SpilloverConfig
from spillover.controller.policy import PolicyState
from spillover.controller.pool_prices import PoolPrice
from spillover.controller.snapshot import Snapshot
from spillover.private_loss import private_loss


def status_view(
    config: SpilloverConfig,
    snapshot: Snapshot,
    state: PolicyState,
    tick_seconds: float,
    prices: Mapping[str, PoolPrice] | None = None,
) -> dict[str, Any]:
    pools = []
    for pool in config.pools:
        observed = snapshot.pool(pool.name)
        plan = state.pools.get(pool.name)
        price = (prices or {}).get(pool.name)
        hourly = price.usd_per_replica_hour if price else pool.price.hourly_usd
        pools.append(
            {
                "pool": pool.name,
                "role": pool.role,
                "capacity_type": pool.capacity_type,
                "status": plan.status if plan else "unknown",
                "desired": plan.desired if plan else None,
                "ready": observed.ready,
                "starting": observed.starting,
                "draining": observed.draining,
                "weight": state.weights.get(pool.name),
                "served_rps": observed.served_rps,
                "queue_time_ms": observed.queue_time_ms,
                "capacity_rps": plan.capacity_rps if plan else None,
                "usd_per_hour": observed.running * hourly,
                "usd_per_replica_hour": hourly,
                "price_source": price.source if price else pool.price.source,
                "price_origin": price.origin if price else "book",
                "price_age_s": price.age_s if price else None,
                "price_note": price.note if price else None,
            }
        )
    return {
        "at": snapshot.at,
        "private_loss": _private_loss(config, snapshot, state),
        "mode": state.mode.value,
        "demand_rps": state.demand_rps,
        "planned_rps": state.planned_rps,
        "budget_limited": state.budget_limited,
        "tick_seconds": tick_seconds,
        "pools": pools,
    }


def _private_loss(
    config: SpilloverConfig, snapshot: Snapshot, state: PolicyState
) -> dict[str, Any]:
    """What losing private now would cost: its measured demand, burst's capacity as the
    policy knows it (configured or learned from busy time)."""
    served = [
        snapshot.pool(pool.name).served_rps for pool in config.pools if pool.role == "private"
    ]
    on_private = sum(rps for rps in served if rps is not None)
    capacities = {
        pool.name: pool.capacity_rps
        or (plan.capacity_rps if (plan := state.pools.get(pool.name)) else None)
        for pool in config.pools
    }
    loss = private_loss(config, on_private, capacities)
    return {
        "private_rps": loss.private_rps,
        "failed_requests": loss.failed_requests,
        "reserve_usd_per_hour": loss.usd_per_hour,
        "summary": loss.sentence(),
    }
