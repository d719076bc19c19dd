"""The decision journal: every decision with its reason, and the state a restart resumes."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from spillover.controller.decisions import Decision
from spillover.controller.ledger.store import LedgerFile
from spillover.controller.ledger.tables import Table


@dataclass(frozen=True)
class DecisionRecord:
    """One logged decision: when, what kind, what it said and why."""

    at: float
    kind: str
    decision: str
    reason: str


@dataclass(frozen=True)
class ControllerState:
    """What a restarted controller resumes from: the policy's state and the last status."""

    at: float
    policy_state: str
    """JSON text."""
    status: str
    """JSON text."""


# The log's own order is its rowid `id`, not `at`: a clock stepped back logs later an
# earlier time.
DECISIONS = Table("decisions", DecisionRecord)
CONTROLLER_STATE = Table("controller_state", ControllerState, fixed={"id": 1})
"""One row, replaced at every save."""


class DecisionJournal:
    """The decisions half of `Ledger`."""

    _file: LedgerFile

    def log_decisions(self, at: float, decisions: Sequence[Decision]) -> None:
        """Append one tick's decisions, each with what it said and why."""
        rows = [DecisionRecord(at, type(d).__name__, d.describe(), d.reason) for d in decisions]
        if not rows:
            return
        with self._file.transaction() as db:
            db.executemany(DECISIONS.insert(), map(DECISIONS.values, rows))

    def recent_decisions(self, limit: int = 10) -> list[DecisionRecord]:
        """The newest decisions first, in the order they were logged (not by clock)."""
        query = DECISIONS.select(order_by="id DESC") + " LIMIT ?"
        return list(map(DECISIONS.read, self._file.db.execute(query, (limit,))))

    def decisions_since(self, at: float) -> list[DecisionRecord]:
        """Decisions logged at or after `at`, oldest first in the order they were logged
        (by id, not by clock): what a drill that began at `at` made the controller do."""
        query = DECISIONS.select(where="at >= ?", order_by="id")
        return list(map(DECISIONS.read, self._file.db.execute(query, (at,))))

    def save_controller_state(self, at: float, policy_state: str, status: str) -> None:
        """Replace the saved state; both blobs must be JSON text."""
        state = ControllerState(at, policy_state, status)
        try:
            with self._file.transaction() as db:
                db.execute(
                    CONTROLLER_STATE.insert(conflict_key=("id",)), CONTROLLER_STATE.values(state)
                )
        except sqlite3.IntegrityError as error:
            raise ValueError(f"controller state must be JSON text: {error}") from None

    def load_controller_state(self) -> ControllerState | None:
        """The last saved state, or None on a fresh file."""
        row = self._file.db.execute(CONTROLLER_STATE.select()).fetchone()
        return None if row is None else CONTROLLER_STATE.read(row)
