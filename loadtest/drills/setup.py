"""What a drill runs with: the controller config its stack runs and its own settings.

Plain values, read by a drill's script (to size its load) and by its assessment (to
name pools, floors and cold starts), so both see the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from loadtest.drills.settings import DrillSection, StackSettings
from spillover.config import PoolConfig, SpilloverConfig
from spillover.errors import SpilloverError

D = TypeVar("D", bound=DrillSection)


class DrillError(SpilloverError):
    """A drill could not run as configured; the message says what to change."""


@dataclass(frozen=True)
class Setup(Generic[D]):
    config: SpilloverConfig
    """The controller config the drill's stack runs (base config plus the overrides)."""
    drill: D
    """The drill's own section of the drill config: its shape and thresholds."""
    stack: StackSettings

    @property
    def slo_ms(self) -> float:
        return self.config.slo.p99_latency_ms

    def pool(self, name: str) -> PoolConfig:
        return next(pool for pool in self.config.pools if pool.name == name)

    def pools_of(self, role: str) -> list[str]:
        return [pool.name for pool in self.config.pools if pool.role == role]

    @property
    def private_capacity_rps(self) -> float:
        """What the private pools serve at full utilization, by their config."""
        total = 0.0
        for pool in self.config.pools:
            if pool.role != "private":
                continue
            if pool.capacity_rps is None:
                raise DrillError(
                    f"pool {pool.name}: drills size their load from capacity_rps; set it in "
                    "the stack's config (or in the drill's overrides)"
                )
            total += pool.capacity_rps * pool.max_replicas
        if not total:
            raise DrillError("the stack's config has no private pool to size the load by")
        return total
