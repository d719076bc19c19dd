"""The bill of quantities: per pool and category, quantity x unit price = amount, with
the source of every price; and each pool's compute split into used and idle.

Compute lines come from `windows` (replica-hours at each $/replica-hour the pool was
charged), the others from `category_windows`; both over the same whole windows as
`spend`, so a bill's total is `spend`'s.

Used and idle follow OpenCost: a replica's cost split by its busy share, the share of
its time Triton was busy. Replica-hours whose busy share was not measured (metrics
unreachable, rows written before the ledger kept it) are reported apart as unmeasured,
neither used nor idle.
"""

from __future__ import annotations

from dataclasses import dataclass

from spillover.controller.ledger.categories import CATEGORIES
from spillover.controller.ledger.spend import CATEGORY_WINDOWS, OVERLAPPING, WINDOWS
from spillover.controller.ledger.store import LedgerFile

_COMPUTE_LINES = f"""
    SELECT pool, role, 'compute', 'replica-h', SUM(replica_seconds) / 3600.0,
           usd_per_replica_hour, price_source, SUM(usd)
    FROM {WINDOWS.name} WHERE {OVERLAPPING}
    GROUP BY pool, role, usd_per_replica_hour, price_source
"""
_CATEGORY_LINES = f"""
    SELECT pool, role, category, unit, SUM(quantity), unit_price, source, SUM(usd)
    FROM {CATEGORY_WINDOWS.name} WHERE {OVERLAPPING}
    GROUP BY pool, role, category, unit, unit_price, source
"""
_POOL_USE = f"""
    SELECT pool, SUM(requests),
           SUM(busy_replica_seconds * usd_per_replica_hour) / 3600.0,
           SUM((measured_replica_seconds - busy_replica_seconds) * usd_per_replica_hour) / 3600.0,
           SUM((replica_seconds - measured_replica_seconds) * usd_per_replica_hour) / 3600.0
    FROM {WINDOWS.name} WHERE {OVERLAPPING}
    GROUP BY pool ORDER BY pool
"""


@dataclass(frozen=True)
class BillLine:
    """One pool's quantity of one category at one unit price, over the range."""

    pool: str
    role: str
    category: str
    unit: str
    quantity: float
    unit_price: float
    source: str
    usd: float


@dataclass(frozen=True)
class PoolUse:
    """What a pool served over the range, and its compute cost split by busy share."""

    pool: str
    requests: int
    used_usd: float
    idle_usd: float
    unmeasured_usd: float


@dataclass(frozen=True)
class Bill:
    lines: tuple[BillLine, ...]
    """By pool, then category in `CATEGORIES` order, then unit price."""
    pools: tuple[PoolUse, ...]

    @property
    def usd(self) -> float:
        return sum(line.usd for line in self.lines)

    @property
    def requests(self) -> int:
        return sum(pool.requests for pool in self.pools)

    def category_usd(self, category: str, pool: str | None = None) -> float:
        """A category's amount, of one pool or (None) all."""
        return sum(
            line.usd
            for line in self.lines
            if line.category == category and pool in (None, line.pool)
        )

    def usd_per_1k_requests(self, category: str, pool: str | None = None) -> float | None:
        """A category's cost of 1,000 served requests; None when nothing was served."""
        served = sum(use.requests for use in self.pools if pool in (None, use.pool))
        return self.category_usd(category, pool) / served * 1000 if served else None


class BillLedger:
    """The bill half of `Ledger`."""

    _file: LedgerFile

    def bill(self, since: float, until: float) -> Bill:
        """The bill of quantities of the windows that overlap [since, until)."""
        parameters = {"since": since, "until": until, "window": self._file.window_seconds}
        db = self._file.db
        lines = [
            BillLine(*row)
            for query in (_COMPUTE_LINES, _CATEGORY_LINES)
            for row in db.execute(query, parameters)
        ]
        lines.sort(
            key=lambda line: (
                line.pool,
                CATEGORIES.index(line.category),
                line.source,
                line.unit_price,
            )
        )
        pools = tuple(PoolUse(*row) for row in db.execute(_POOL_USE, parameters))
        return Bill(tuple(lines), pools)


def _bill_order(line: BillLine) -> tuple[str, int, str, float]:
    return line.pool, CATEGORIES.index(line.category), line.source, line.unit_price
