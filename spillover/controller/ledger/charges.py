"""The ledger's arithmetic: how a tick's usage becomes window charges and a new watermark.

Pure functions of their arguments (no clock, no file), under the "policy is pure"
contract, so every rule in the ledger's docstring is a function a test can call.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from spillover.config import PoolConfig
from spillover.controller.ledger.categories import (
    CategoryRate,
    CategoryRow,
    category_charges,
    compute_usd_per_replica_hour,
    rates_from_json,
    rates_to_json,
)

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class PoolUsage:
    """One pool at one tick, as the controller loop sees it."""

    pool: str
    role: str
    """"private" or "burst"; spend can be summed by role (the budget caps burst)."""
    replicas: int
    """Replicas running now, ready, starting or draining: what is billed."""
    usd_per_replica_hour: float
    """Compute's unit price in force from now on (the config's, or a market price)."""
    price_source: str
    requests_total: int | None
    """Cumulative served-requests counter from the gateway; None: unknown this tick."""
    errors_total: int | None
    """Cumulative failed-requests counter; None: unknown this tick."""
    busy_share: float | None = None
    """Share of the replicas' time Triton was busy since the last tick (0..1); None:
    not measured. Splits the interval's compute cost into used and idle."""
    rates: tuple[CategoryRate, ...] = ()
    """Unit prices of the other categories in force from now on (`category_rates`)."""

    @staticmethod
    def of(
        pool: PoolConfig,
        replicas: int,
        requests_total: int | None,
        errors_total: int | None,
        busy_share: float | None = None,
        rates: tuple[CategoryRate, ...] = (),
    ) -> PoolUsage:
        """The usage of a configured pool, its compute priced as its config says."""
        return PoolUsage(
            pool.name,
            pool.role,
            replicas,
            compute_usd_per_replica_hour(pool.price),
            pool.price.source,
            requests_total,
            errors_total,
            busy_share,
            rates,
        )


@dataclass(frozen=True)
class Watermark:
    """How far a pool is charged (`at`), and the usage in force from then on.

    Its counters are the newest known ones, which may be older than `at`.
    """

    pool: str
    role: str
    replicas: int
    usd_per_replica_hour: float
    price_source: str
    requests_total: int | None
    errors_total: int | None
    at: float
    category_rates: str = "[]"
    """The other categories' rates in force, as JSON (`rates_to_json`)."""


@dataclass(frozen=True)
class WindowRow:
    """One pool in one window at one price, as stored: what `spend` sums, for audits.

    A charge is a row of the same shape: the increment one interval adds to it.
    """

    window_start: int
    pool: str
    role: str
    replica_seconds: float
    usd: float
    usd_per_replica_hour: float
    price_source: str
    requests: int
    errors: int
    busy_replica_seconds: float = 0.0
    """Of `replica_seconds`, those Triton was busy: the used part of the cost."""
    measured_replica_seconds: float = 0.0
    """Of `replica_seconds`, those whose busy share was measured; the rest is neither
    used nor idle but unknown (rows older than the measurement are all unknown)."""


WINDOW_KEY = ("window_start", "pool", "usd_per_replica_hour", "price_source")
"""What makes a window row distinct: a mid-window price change adds a row, never blends."""
WINDOW_SUMS = (
    "replica_seconds",
    "usd",
    "requests",
    "errors",
    "busy_replica_seconds",
    "measured_replica_seconds",
)
"""The columns two charges to the same row add up in."""


@dataclass(frozen=True)
class TickCharges:
    """What one tick adds: compute rows, the other categories' rows, new watermarks."""

    compute: list[WindowRow]
    categories: list[CategoryRow]
    watermarks: list[Watermark]


def charge_tick(
    at: float,
    usages: Sequence[PoolUsage],
    marks: Mapping[str, Watermark],
    window_seconds: int,
) -> TickCharges:
    """The charges for [watermark, at] of every pool, and the watermarks that follow them.

    A pool already recorded at or after `at` (a replay after a restart) gets neither; a
    pool never seen gets only a watermark, since nothing is known about before it.
    """
    check_usages(at, usages)
    charges = TickCharges([], [], [])
    for usage in usages:
        mark = marks.get(usage.pool)
        if mark is not None and at <= mark.at:
            continue
        if mark is not None:
            charges.compute.extend(interval_charges(mark, usage, at, window_seconds))
            pieces = list(split(mark.at, at, window_seconds))
            requests = counter_delta(mark.requests_total, usage.requests_total)
            rates = rates_from_json(mark.category_rates)
            charges.categories.extend(
                category_charges(rates, usage.pool, mark.role, mark.replicas, pieces, requests)
            )
        charges.watermarks.append(advance(mark, usage, at))
    return charges


def check_usages(at: float, usages: Sequence[PoolUsage]) -> None:
    """Refuse a tick that would corrupt the sums rather than store it."""
    if not math.isfinite(at):
        raise ValueError(f"at must be a finite time, not {at!r}")
    names = [usage.pool for usage in usages]
    if len(set(names)) != len(names):
        raise ValueError(f"each pool may appear once per tick: {sorted(names)}")
    for usage in usages:
        if usage.replicas < 0:
            raise ValueError(f"pool {usage.pool}: replicas cannot be negative ({usage.replicas})")
        if usage.busy_share is not None and not 0 <= usage.busy_share <= 1:
            raise ValueError(f"pool {usage.pool}: busy_share must be in [0, 1]")


def interval_charges(
    mark: Watermark, usage: PoolUsage, at: float, window_seconds: int
) -> list[WindowRow]:
    """Window increments for [mark.at, at] at the watermark's replicas and price (what
    ran during the interval); the counter deltas go whole to the last piece. The busy
    share is the new tick's: Triton's counters measured the interval just ended."""
    pieces = list(split(mark.at, at, window_seconds))
    requests = counter_delta(mark.requests_total, usage.requests_total)
    errors = counter_delta(mark.errors_total, usage.errors_total)
    rows = []
    for index, (window_start, seconds) in enumerate(pieces):
        last = index == len(pieces) - 1
        replica_seconds = mark.replicas * seconds
        measured = replica_seconds if usage.busy_share is not None else 0.0
        rows.append(
            WindowRow(
                window_start=window_start,
                pool=usage.pool,
                role=mark.role,
                replica_seconds=replica_seconds,
                usd=replica_seconds * mark.usd_per_replica_hour / 3600,
                usd_per_replica_hour=mark.usd_per_replica_hour,
                price_source=mark.price_source,
                requests=requests if last else 0,
                errors=errors if last else 0,
                busy_replica_seconds=measured * (usage.busy_share or 0.0),
                measured_replica_seconds=measured,
            )
        )
    return rows


def split(begin: float, end: float, window: int) -> Iterator[tuple[int, float]]:
    """(window_start, seconds) for each epoch-aligned window that [begin, end) touches."""
    cursor = begin
    while cursor < end:
        window_start = math.floor(cursor / window) * window
        stop = min(window_start + window, end)
        yield window_start, stop - cursor
        cursor = stop


def counter_delta(last: int | None, new: int | None) -> int:
    """Requests since the last known value; a drop means the counter restarted at 0."""
    if new is None or last is None:
        return 0
    return new if new < last else new - last


def advance(mark: Watermark | None, usage: PoolUsage, at: float) -> Watermark:
    """The new watermark: `at`, what runs from now on, the newest known counters."""
    requests = usage.requests_total
    errors = usage.errors_total
    if mark is not None:
        requests = mark.requests_total if requests is None else requests
        errors = mark.errors_total if errors is None else errors
    return Watermark(
        pool=usage.pool,
        role=usage.role,
        replicas=usage.replicas,
        usd_per_replica_hour=usage.usd_per_replica_hour,
        price_source=usage.price_source,
        requests_total=requests,
        errors_total=errors,
        at=at,
        category_rates=rates_to_json(usage.rates),
    )


def month_start(at: float) -> float:
    """The start of the UTC month holding `at` (POSIX seconds: days of exactly 86,400 s)."""
    day = math.floor(at / SECONDS_PER_DAY)
    return float((day - _day_of_month(day) + 1) * SECONDS_PER_DAY)


def _day_of_month(day: int) -> int:
    """1..31 for a day counted from 1970-01-01 in the proleptic Gregorian calendar.

    Calendar arithmetic rather than `datetime`, which this module may not import (it
    also reads clocks). Counting years from March 1st puts each leap day at the end of
    its year, so months have a fixed 153-day pattern over five months and 400-year eras
    (146,097 days) repeat exactly; this is H. Hinnant's `civil_from_days`.
    """
    day_of_era = (day + 719_468) % 146_097  # days since 0000-03-01, within its era
    year_of_era = (
        day_of_era - day_of_era // 1460 + day_of_era // 36_524 - day_of_era // 146_096
    ) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    month_from_march = (5 * day_of_year + 2) // 153
    return day_of_year - (153 * month_from_march + 2) // 5 + 1
