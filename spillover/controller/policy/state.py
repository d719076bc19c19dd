"""What the policy remembers between ticks: passed in and returned, never hidden.

The loop stores it after every tick, so a restarted controller picks up the same
forecast, cooldown windows and learned capacities, and decides as if it had never
stopped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from spillover.controller.decisions import Mode


@dataclass(frozen=True)
class DemandForecast:
    """Holt's linear smoothing of demand: an EWMA level and an EWMA trend."""

    level_rps: float
    trend_rps_per_s: float
    at: float


@dataclass(frozen=True)
class PoolPlan:
    """What the policy last decided for one pool, and what it saw."""

    desired: int
    status: str
    """serving, scaling, standby, degraded or down (shown by `spillover status`)."""
    recent_targets: tuple[tuple[float, int], ...] = ()
    """(time, replicas needed) over the scale-down cooldown: the pool shrinks only to
    the largest of them."""
    capacity_rps: float | None = None
    """Requests/s one replica serves at full utilization: configured, or learned from
    Triton's busy time."""


@dataclass(frozen=True)
class PolicyState:
    """Everything `decide` carries from one tick to the next."""

    mode: Mode = Mode.NORMAL
    forecast: DemandForecast | None = None
    pools: Mapping[str, PoolPlan] = field(default_factory=dict)
    weights: Mapping[str, int] = field(default_factory=dict)
    stale_since: float | None = None
    """When metrics first went missing; None while they are fresh."""
    budget_limited: bool = False
    demand_rps: float | None = None
    planned_rps: float | None = None
    """Demand the pools are sized for: the forecast one cold start ahead."""

    def desired(self, pool: str) -> int | None:
        plan = self.pools.get(pool)
        return plan.desired if plan else None

    def with_pool(self, name: str, plan: PoolPlan) -> PolicyState:
        return replace(self, pools={**self.pools, name: plan})

    def to_json(self) -> str:
        # By hand rather than dataclasses.asdict, which deep-copies: this runs every tick.
        forecast = self.forecast
        return json.dumps(
            {
                "mode": self.mode.value,
                "forecast": None if forecast is None else [
                    forecast.level_rps, forecast.trend_rps_per_s, forecast.at
                ],
                "pools": {
                    name: [plan.desired, plan.status, plan.recent_targets, plan.capacity_rps]
                    for name, plan in self.pools.items()
                },
                "weights": dict(self.weights),
                "stale_since": self.stale_since,
                "budget_limited": self.budget_limited,
                "demand_rps": self.demand_rps,
                "planned_rps": self.planned_rps,
            }
        )  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> PolicyState:
        data = json.loads(text)
        forecast = data.pop("forecast")
        return cls(
            mode=Mode(data.pop("mode")),
            forecast=DemandForecast(*forecast) if forecast else None,
            pools={
                name: PoolPlan(
                    desired=desired,
                    status=status,
                    recent_targets=tuple((float(at), int(count)) for at, count in recent),
                    capacity_rps=capacity,
                )
                for name, (desired, status, recent, capacity) in data.pop("pools").items()
            },
            **data,
        )
