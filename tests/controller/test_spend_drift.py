"""The controller's own ledger-vs-bill comparison: settled days only, drift per cost tag,
the last figures kept when the bill cannot be read, and a burst bill the ledger never
charged counted as −100 %, not left out."""

from __future__ import annotations

import threading
from datetime import date, datetime, timezone

import pytest

from spillover.controller.drift import SpendDrift, settled_period
from spillover.controller.ledger import Ledger, PoolUsage
from spillover.controller.reconcile import reconcile


def at(day: str, hour: int = 12) -> float:
    return datetime.fromisoformat(f"{day}T{hour:02d}:00:00+00:00").timestamp()


@pytest.mark.parametrize(
    ("today", "first", "end"),
    [
        ("2026-12-15", date(2026, 12, 1), date(2026, 12, 14)),  # through the 13th
        ("2026-12-02", date(2026, 11, 1), date(2026, 12, 1)),  # nothing of December settled
        ("2026-12-01", date(2026, 11, 1), date(2026, 11, 30)),
        ("2027-01-01", date(2026, 12, 1), date(2026, 12, 31)),
    ],
)
def test_only_days_cost_explorer_has_finished_are_compared(today, first, end):
    assert settled_period(at(today)) == (first, end)


def test_the_drift_is_ledger_minus_bill_over_bill_on_the_settled_days(tmp_path):
    database = tmp_path / "controller.db"
    with Ledger(database, window_seconds=3600) as ledger:
        # 1 burst replica at $0.50 for 10 h on Dec 10th, and 10 h today (not settled).
        for start in (at("2026-12-10", 0), at("2026-12-15", 0)):
            ledger.record(start, [PoolUsage("burst", "burst", 1, 0.5, "spot", None, None)])
            ledger.record(start + 36_000, [PoolUsage("burst", "burst", 0, 0.5, "spot", None, None)])
    asked = []

    def bill(first: date, end: date) -> dict[str, float]:
        asked.append((first, end))
        return {"burst": 4.0, "": 1.0}

    def rows(since: float, until: float):
        with Ledger(database, window_seconds=None) as reader:
            return list(reader.windows(since, until))

    drift = SpendDrift(rows, bill, every_s=3600, clock=lambda: at("2026-12-15"))
    assert drift.drift() == {}
    drift.refresh()
    assert asked == [(date(2026, 12, 1), date(2026, 12, 14))]
    # $5 charged on the 10th against $4 billed; today's $5 is not compared yet.
    assert drift.drift() == pytest.approx({"burst": 0.25})


def test_a_bill_that_cannot_be_read_keeps_the_last_drift_and_is_tried_again():
    answers: list[dict[str, float] | Exception] = [{"burst": 10.0}, RuntimeError("throttled")]
    rows = [PoolUsageRow("burst", "burst", 9.0)]

    def bill(first: date, end: date) -> dict[str, float]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    drift = SpendDrift(lambda since, until: rows, bill, every_s=0.01)
    drift.refresh()
    assert drift.drift() == pytest.approx({"burst": -0.1})
    stop = threading.Event()
    runner = threading.Thread(target=drift.run, args=(stop,))
    runner.start()
    stop.wait(0.2)
    stop.set()
    runner.join(timeout=5)
    assert not runner.is_alive()
    assert drift.drift() == pytest.approx({"burst": -0.1})


def test_burst_costs_the_ledger_never_charged_are_a_drift_not_a_bill_only_line():
    (line,) = reconcile([], {"burst": 3.0})
    assert line.ledger_usd == 0 and line.drift_percent == -100
    (shared,) = reconcile([], {"shared": 3.0})
    assert shared.drift_percent is None  # in no pool's ledger: listed, not compared


class PoolUsageRow:
    def __init__(self, pool: str, role: str, usd: float) -> None:
        self.pool, self.role, self.usd = pool, role, usd


def test_utc_midnight_is_the_day_boundary():
    assert settled_period(datetime(2026, 12, 3, 0, 0, 1, tzinfo=timezone.utc).timestamp()) == (
        date(2026, 12, 1),
        date(2026, 12, 2),
    )
