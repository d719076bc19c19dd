"""What one replica of each pool costs at this tick, and how sure the controller is of it.

A value the price feed makes and the ledger, status and metrics read; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PriceOrigin = Literal["book", "market", "stale"]
"""book: the config's price (no market, or AWS never answered); market: AWS's price,
refreshed on time; stale: AWS's last known price, its refresh failing."""


@dataclass(frozen=True)
class PoolPrice:
    pool: str
    usd_per_replica_hour: float
    source: str
    """Recorded with every ledger row: a new source is a new row, never a rewrite."""
    origin: PriceOrigin
    age_s: float | None = None
    """Seconds since AWS last confirmed a market price; None for a price-book price."""
    note: str | None = None
    """Why a market pool is on its price book or stale (an AWS error, no credentials)."""

    @property
    def fallback(self) -> bool:
        """A market pool charged at something other than a fresh market price."""
        return self.note is not None
