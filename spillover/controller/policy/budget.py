"""Keep burst spend under the configured caps, and say so when it bites."""

from __future__ import annotations

import math
from collections.abc import Mapping

from spillover.config import PoolConfig, SpilloverConfig


def hourly_allowance(config: SpilloverConfig, spent_this_month_usd: float) -> tuple[float, str]:
    """What burst replicas may cost per hour now, and which cap sets it."""
    budget = config.budget
    if budget.monthly_cap_usd is not None and spent_this_month_usd >= budget.monthly_cap_usd:
        return 0.0, (
            f"monthly cap ${budget.monthly_cap_usd:,.2f} reached "
            f"(${spent_this_month_usd:,.2f} spent)"
        )
    if budget.max_burst_usd_per_hour is not None:
        return budget.max_burst_usd_per_hour, f"${budget.max_burst_usd_per_hour:,.2f}/h cap"
    return math.inf, "no cap"


def limit_burst(
    config: SpilloverConfig,
    burst_pools: list[PoolConfig],
    desired: Mapping[str, int],
    previous: Mapping[str, int],
    spent_this_month_usd: float,
) -> tuple[dict[str, int], str | None]:
    """Burst sizes within the allowance (pools in preference order), and the reason
    when the budget changed any of them; None when it did not bite."""
    allowance, which_cap = hourly_allowance(config, spent_this_month_usd)
    projected = sum(desired[pool.name] * pool.price.hourly_usd for pool in burst_pools)
    if projected <= allowance + 1e-9:
        return dict(desired), None
    action = config.budget.action
    left = allowance
    limited = {}
    for pool in burst_pools:
        price = pool.price.hourly_usd
        fits = math.floor(left / price + 1e-9)
        wanted = desired[pool.name]
        current = previous.get(pool.name, 0)
        if action == "shed":
            allowed = min(wanted, fits)
        elif action == "refuse_growth":
            allowed = min(wanted, max(fits, current))
        else:  # hold: no growth at all while over the cap
            allowed = min(wanted, current)
        limited[pool.name] = allowed
        left = max(left - allowed * price, 0.0)
    sizes = ", ".join(f"{name} {limited[name]} of {desired[name]}" for name in limited)
    return limited, (
        f"budget: burst would cost ${projected:,.2f}/h against the {which_cap}; "
        f"{action.replace('_', ' ')}: {sizes}"
    )
