"""The ledger against the AWS bill every few hours, so spend drift is a metric an alert reads.

`spillover spend reconcile` answers once, for a person; a controller with
`controller.reconcile_every_hours` asks Cost Explorer itself (its role has
ce:GetCostAndUsage) and exports the drift per cost tag. Only settled days are compared:
Cost Explorer fills in the last day or two over the following day, so a drift on them
would be the bill's lag, not the ledger's error. On its own thread: a Cost Explorer call
may take seconds of retries, and the tick never waits for it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, timedelta, timezone

from spillover.controller.reconcile import ChargedRow, epoch, reconcile

logger = logging.getLogger("spillover.controller")

UNSETTLED_DAYS = 2
"""Today and yesterday: Cost Explorer may still be filling their costs in."""
RETRY_AFTER_FAILURE_S = 900.0
"""A failed comparison is tried again after this long, not after the full interval."""
UNTAGGED_LABEL = "(untagged)"

ReadRows = Callable[[float, float], Iterable[ChargedRow]]
ReadBill = Callable[[date, date], Mapping[str, float]]


def settled_period(now: float) -> tuple[date, date]:
    """[first day, end) of this month's settled days; on a month's first day, when none
    of it has settled, the whole of the month before."""
    today = datetime.fromtimestamp(now, timezone.utc).date()
    end = today - timedelta(days=UNSETTLED_DAYS - 1)
    return (end - timedelta(days=1)).replace(day=1), end


class SpendDrift:
    """The latest drift per `spillover:pool` tag: (ledger − bill) / bill over settled days."""

    def __init__(
        self,
        read_rows: ReadRows,
        read_bill: ReadBill,
        every_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.read_rows, self.read_bill = read_rows, read_bill
        self.every_s, self.clock = every_s, clock
        self._lock = threading.Lock()
        self._drift: dict[str, float] = {}

    def drift(self) -> dict[str, float]:
        """Ratio per tag, from the last comparison that worked; empty before one has."""
        with self._lock:
            return dict(self._drift)

    def refresh(self) -> None:
        """Compare once; raises what reading the ledger or the bill raised."""
        first, end = settled_period(self.clock())
        rows = self.read_rows(epoch(first), epoch(end))
        lines = reconcile(rows, self.read_bill(first, end))
        drift = {
            line.tag or UNTAGGED_LABEL: line.drift_percent / 100
            for line in lines
            if line.drift_percent is not None
        }
        with self._lock:
            self._drift = drift
        logger.info(
            "spend vs the AWS bill, %s to %s: %s",
            first,
            end - timedelta(days=1),
            ", ".join(f"{tag} {ratio:+.1%}" for tag, ratio in sorted(drift.items())) or "nothing",
        )

    def run(self, stop: threading.Event) -> None:
        """Compare now and every `every_s` until `stop`; a failure keeps the last figures."""
        while not stop.is_set():
            try:
                self.refresh()
                wait = self.every_s
            except Exception:  # the bill is advisory: never the controller's end
                logger.exception("cannot compare spend with the AWS bill; keeping the last drift")
                wait = min(self.every_s, RETRY_AFTER_FAILURE_S)
            stop.wait(wait)
