"""What the policy decided, as typed values the actuators apply and the log records.

Every decision carries a `reason` written for the SRE reading `spillover status`
at 3 a.m.: what was seen and which rule acted on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Mode(str, Enum):
    """How the controller is running."""

    NORMAL = "normal"
    """Private capacity serves all demand; burst stands by."""
    BURST = "burst"
    """Demand exceeds private capacity; burst pools take the overflow."""
    FAILOVER = "failover"
    """A private pool has no ready replica; burst is sized for its share of demand."""
    SAFE = "safe"
    """Metrics are stale: replicas and weights are held, nothing scales down."""


@dataclass(frozen=True)
class ScalePool:
    """Run this many replicas in a pool."""

    pool: str
    replicas: int
    reason: str

    def describe(self) -> str:
        return f"scale {self.pool} to {self.replicas}"


@dataclass(frozen=True)
class SetWeights:
    """Route these traffic shares (percent, summing to 100) to pools."""

    weights: tuple[tuple[str, int], ...]
    reason: str

    def describe(self) -> str:
        return "route " + " ".join(f"{pool}={share}%" for pool, share in self.weights)

    @property
    def shares(self) -> dict[str, int]:
        return dict(self.weights)


@dataclass(frozen=True)
class SetMode:
    """Enter a mode."""

    mode: Mode
    reason: str

    def describe(self) -> str:
        return f"mode {self.mode.value}"


@dataclass(frozen=True)
class Alert:
    """Something a person should know about; the loop logs it as a warning."""

    topic: str
    reason: str

    def describe(self) -> str:
        return f"alert {self.topic}"


Decision = ScalePool | SetWeights | SetMode | Alert
