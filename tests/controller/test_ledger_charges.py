"""The ledger's month start, computed without datetime (the charge arithmetic is pure),
agrees with datetime's calendar on every month boundary and at random moments."""

from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest

from spillover.controller.ledger.charges import month_start


def utc_month_start(at: float) -> float:
    moment = datetime.fromtimestamp(at, timezone.utc)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()


def month_boundaries(first_year: int, last_year: int) -> list[float]:
    return [
        datetime(year, month, 1, tzinfo=timezone.utc).timestamp()
        for year in range(first_year, last_year + 1)
        for month in range(1, 13)
    ]


# 1900 and 2100 are not leap years, 2000 is: the century rules are inside this range.
BOUNDARIES = month_boundaries(1899, 2101)


@pytest.mark.parametrize(
    "offset",
    [0.0, 0.5, 86_399.0, -1.0, -0.25],
    ids=["on", "just-after", "end-of-day-1", "before", "quarter-second-before"],
)
def test_month_start_on_every_month_boundary(offset: float) -> None:
    for boundary in BOUNDARIES:
        assert month_start(boundary + offset) == utc_month_start(boundary + offset), boundary


def test_month_start_at_random_moments() -> None:
    rng = random.Random(11)
    low, high = BOUNDARIES[0], BOUNDARIES[-1]
    for _ in range(20_000):
        at = float(rng.randrange(int(low), int(high)))
        assert month_start(at) == utc_month_start(at), at


@pytest.mark.parametrize(
    ("moment", "start"),
    [
        ("2024-02-29T23:59:59", "2024-02-01T00:00:00"),
        ("2024-03-01T00:00:00", "2024-03-01T00:00:00"),
        ("1969-12-31T23:59:59", "1969-12-01T00:00:00"),
        ("2026-11-11T20:00:00", "2026-11-01T00:00:00"),
    ],
    ids=["leap-day", "after-a-leap-day", "before-the-epoch", "eleven-eleven"],
)
def test_month_start_examples(moment: str, start: str) -> None:
    def utc(text: str) -> float:
        return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()

    assert month_start(utc(moment)) == utc(start)
