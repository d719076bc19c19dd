"""The controller's records in SQLite: spend per pool per window, decisions, policy state.

`Ledger` is the one way in; its parts, one activity each:

- `charges`: the arithmetic below, as pure functions (under the policy-is-pure contract);
- `store`: the file (WAL, transactions) and its schema, brought up to date by the
  ordered history in `migrations`;
- `categories`: the unit prices of storage, network, labour and operations (compute's
  comes in each tick's `PoolUsage`), and their window charges, pure too;
- `spend`: charging ticks and summing windows; `bill`: the bill of quantities by
  category with used and idle compute; `journal`: decisions and saved state;
- `tables`: SQL built from the row dataclasses, the one definition of each table's columns.

How a tick becomes money (each rule is tested in tests/controller/test_ledger*.py):

- Each pool has a watermark: the last `at` recorded and what ran then (replicas, price,
  role, counter values). `record(at)` charges the interval [watermark, at] at the
  watermark's replicas and price -- the ones in force during the interval, a left Riemann
  sum -- and moves the watermark to `at`, in the same transaction as the charge. So a
  controller killed at any point and restarted on the same file neither loses nor
  double-counts: a replayed `at <= watermark` charges nothing, and the first tick after
  a restart charges the whole gap at the last known replica count, because those
  replicas kept running (and billing) while the controller was down.
- A pool's first record only sets its watermark: nothing is known about before it.
- Windows are aligned to the epoch (`floor(at / window) * window`); an interval that
  crosses boundaries is split exactly between them.
- A window row is one pool, one window and one price: a price change mid-window (a new
  spot price, an edited config) starts a second row for that window, so every row's
  `usd` is its replica-seconds times its own unit price and `spend` can name every
  source a range was priced from. Nothing is averaged or overwritten.
- Every category is charged the same way: compute in `windows` (replica-seconds at
  $/replica-hour), the others in `category_windows` (a quantity in its unit at its
  unit price), both at the rates the watermark holds, in the same transaction; a
  price or rate change mid-window starts a second row, as compute's does.
- Requests and errors are the deltas of the gateway's cumulative counters since the
  last known value, credited whole to the window holding the interval's last instant
  (where the replica-seconds that served them are; integers, never split by time). The
  first known value is a baseline; a value below the last one means the counter reset
  (gateway restart), and the delta is the new value; None leaves the stored value as it
  was, so the next known value's delta covers the gap.
- Queries count whole windows: `spend(since, until)` sums every window overlapping
  [since, until), widening a range to window edges rather than cutting inside one. A
  UTC month starts on a window edge whenever the window divides a day (60 s, 300 s,
  3600 s), so month-to-date is exact; with other lengths the window straddling the month
  start counts in full, so a budget cap trips early, never late.
- Durability: `synchronous=NORMAL` in WAL survives a killed process; a power loss may
  lose the newest ticks, but a lost tick's watermark is lost with it, so the next
  `record` charges that interval once, as if the tick had never happened.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from spillover.controller.ledger.bill import Bill, BillLedger, BillLine, PoolUse
from spillover.controller.ledger.categories import (
    CATEGORIES,
    CategoryRate,
    CategoryRow,
    category_rates,
)
from spillover.controller.ledger.charges import PoolUsage, WindowRow
from spillover.controller.ledger.journal import ControllerState, DecisionJournal, DecisionRecord
from spillover.controller.ledger.migrations import SCHEMA_VERSION
from spillover.controller.ledger.spend import SpendKey, SpendLedger, SpendRow
from spillover.controller.ledger.store import (
    LedgerError,
    LedgerFile,
    has_schema,
)

__all__ = [
    "CATEGORIES",
    "SCHEMA_VERSION",
    "Bill",
    "BillLine",
    "CategoryRate",
    "CategoryRow",
    "ControllerState",
    "DecisionRecord",
    "Ledger",
    "LedgerError",
    "PoolUsage",
    "PoolUse",
    "SpendKey",
    "SpendRow",
    "WindowRow",
    "category_rates",
    "has_schema",
]


class Ledger(SpendLedger, BillLedger, DecisionJournal):
    """Spend ledger, decision log and controller state in one SQLite file."""

    def __init__(self, path: Path | str, window_seconds: int | None = 60) -> None:
        """Open or create the file, migrating an older one; window_seconds None: whatever
        the file was made with (a file keeps the window it was created with)."""
        self._file = LedgerFile(path, window_seconds)

    @property
    def path(self) -> Path:
        return self._file.path

    @property
    def window_seconds(self) -> int:
        return self._file.window_seconds

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()
