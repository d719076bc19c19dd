"""Spend: charging each tick to its windows, and the sums `spend` and budgets read."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from spillover.controller.ledger.categories import CATEGORY_KEY, CATEGORY_SUMS, CategoryRow
from spillover.controller.ledger.charges import (
    WINDOW_KEY,
    WINDOW_SUMS,
    PoolUsage,
    Watermark,
    WindowRow,
    charge_tick,
    month_start,
)
from spillover.controller.ledger.store import LedgerFile
from spillover.controller.ledger.tables import Table

SpendKey = Literal["pool", "window", "role"]

WINDOWS = Table("windows", WindowRow)
CATEGORY_WINDOWS = Table("category_windows", CategoryRow)
WATERMARKS = Table("watermarks", Watermark)

_ADD_TO_WINDOW = WINDOWS.insert(conflict_key=WINDOW_KEY, summed=WINDOW_SUMS)
_ADD_TO_CATEGORY = CATEGORY_WINDOWS.insert(conflict_key=CATEGORY_KEY, summed=CATEGORY_SUMS)
_SET_WATERMARK = WATERMARKS.insert(conflict_key=("pool",))

# A window counts whole when it overlaps [since, until): window_start + window > since.
OVERLAPPING = "window_start < :until AND window_start > :since - :window"

_SPEND_COLUMNS: dict[str, str] = {"pool": "pool", "window": "window_start", "role": "role"}

_SPEND = f"""
    SELECT {{key}}, SUM(replica_seconds), SUM(usd), SUM(requests), SUM(errors),
           json_group_array(DISTINCT price_source)
    FROM {WINDOWS.name}
    WHERE {OVERLAPPING}
    GROUP BY {{key}} ORDER BY {{key}}
"""

# The other categories' dollars per key, added to compute's in `spend`.
_CATEGORY_SPEND = f"""
    SELECT {{key}}, SUM(usd)
    FROM {CATEGORY_WINDOWS.name}
    WHERE {OVERLAPPING}
    GROUP BY {{key}}
"""

# What a burst budget counts: what running burst capacity costs (compute, and the
# storage and network that follow its replicas and requests). People's and operators'
# hours are allocated to pools, not caused by them: counting them would spend a monthly
# cap with no replica running, and a cap that refuses burst saves none of them.
BUDGET_CATEGORIES = ("storage", "network")
"""The categories besides compute that `month_to_date_usd` counts."""

_MONTH_TO_DATE = f"""
    SELECT COALESCE(SUM(usd), 0.0) FROM (
        SELECT usd FROM {WINDOWS.name} WHERE {OVERLAPPING} AND role = :role
        UNION ALL
        SELECT usd FROM {CATEGORY_WINDOWS.name} WHERE {OVERLAPPING} AND role = :role
            AND category IN ({", ".join(repr(category) for category in BUDGET_CATEGORIES)})
    )
"""


@dataclass(frozen=True)
class SpendRow:
    """Spend of one pool, window or role over a time range."""

    key: str | int
    """Pool name, role, or window start (seconds since the epoch)."""
    replica_hours: float
    usd: float
    """Every category: compute, storage, network, labour, operations."""
    requests: int
    errors: int
    price_sources: tuple[str, ...]
    """Every compute price source the range was charged at, sorted (the bill of
    quantities, `Ledger.bill`, names every category's)."""

    @property
    def usd_per_1k_requests(self) -> float | None:
        """Cost of 1,000 served requests; None when nothing was served."""
        return self.usd / self.requests * 1000 if self.requests else None


class SpendLedger:
    """The spend half of `Ledger`: what each pool ran, priced, per window."""

    _file: LedgerFile

    def record(self, at: float, usages: Sequence[PoolUsage]) -> None:
        """Charge every pool up to `at` and move its watermark there, in one transaction."""
        with self._file.transaction() as db:
            marks = {
                mark.pool: mark for mark in map(WATERMARKS.read, db.execute(WATERMARKS.select()))
            }
            charges = charge_tick(at, usages, marks, self._file.window_seconds)
            db.executemany(_ADD_TO_WINDOW, map(WINDOWS.values, charges.compute))
            db.executemany(_ADD_TO_CATEGORY, map(CATEGORY_WINDOWS.values, charges.categories))
            db.executemany(_SET_WATERMARK, map(WATERMARKS.values, charges.watermarks))

    def watermark(self, pool: str) -> float | None:
        """The last `at` recorded for a pool (None: never): how far its spend is known."""
        row = self._file.db.execute(
            f"SELECT at FROM {WATERMARKS.name} WHERE pool = ?", (pool,)
        ).fetchone()
        return None if row is None else float(row[0])

    def spend(self, since: float, until: float, by: SpendKey) -> list[SpendRow]:
        """Spend per pool, window or role, over the windows that overlap [since, until)."""
        if by not in _SPEND_COLUMNS:
            raise ValueError(f"by must be one of {', '.join(_SPEND_COLUMNS)}, not {by!r}")
        key = _SPEND_COLUMNS[by]
        parameters = self._range(since, until)
        rows = self._file.db.execute(_SPEND.format(key=key), parameters).fetchall()
        others = {
            row[0]: row[1]
            for row in self._file.db.execute(_CATEGORY_SPEND.format(key=key), parameters)
        }
        return [_spend_row(row, others.get(row[0], 0.0)) for row in rows]

    def windows(self, since: float, until: float) -> list[WindowRow]:
        """The stored rows of the windows that overlap [since, until), oldest first."""
        query = WINDOWS.select(where=OVERLAPPING, order_by=", ".join(WINDOW_KEY))
        return list(map(WINDOWS.read, self._file.db.execute(query, self._range(since, until))))

    def category_windows(self, since: float, until: float) -> list[CategoryRow]:
        """The stored category rows of the windows that overlap [since, until)."""
        query = CATEGORY_WINDOWS.select(where=OVERLAPPING, order_by=", ".join(CATEGORY_KEY))
        rows = self._file.db.execute(query, self._range(since, until))
        return list(map(CATEGORY_WINDOWS.read, rows))

    def month_to_date_usd(self, at: float, role: str = "burst") -> float:
        """Spend of a role since the start of the UTC month holding `at` (budget caps):
        compute and `BUDGET_CATEGORIES`."""
        parameters = {**self._range(month_start(at), at), "role": role}
        return float(self._file.db.execute(_MONTH_TO_DATE, parameters).fetchone()[0])

    def _range(self, since: float, until: float) -> dict[str, float]:
        return {"since": since, "until": until, "window": self._file.window_seconds}


def _spend_row(row: tuple[str | int, float, float, int, int, str], other_usd: float) -> SpendRow:
    """Compute's sums for one key with the other categories' dollars added (every key has
    compute rows: a pool's first interval writes one, if of 0 replicas)."""
    key, replica_seconds, usd, requests, errors, sources_json = row
    return SpendRow(
        key=key,
        replica_hours=replica_seconds / 3600,
        usd=usd + other_usd,
        requests=requests,
        errors=errors,
        price_sources=tuple(sorted(json.loads(sources_json))),
    )
