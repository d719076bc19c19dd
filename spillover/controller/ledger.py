"""The controller's records in SQLite: spend per pool per window, decisions, policy state.

SQLite is the embedded default (one file, no server). WAL mode lets `spillover spend` and
`spillover status` read from other processes while the controller writes, and every
write here is one transaction, so a reader sees whole ticks or nothing of them.

How a tick becomes money (each rule is tested in tests/controller/test_ledger.py):

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

import json
import math
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Literal

from spillover.config import PoolConfig
from spillover.controller.decisions import Decision
from spillover.errors import PermanentError

SCHEMA_VERSION = 1
BUSY_TIMEOUT_SECONDS = 5.0
"""How long a writer waits for another writer's transaction; readers never wait in WAL."""

SpendKey = Literal["pool", "window", "role"]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)
    WITHOUT ROWID""",
    # Keyed by window first: spend queries select a time range across all pools. The price
    # is part of the key, so a mid-window price change adds a row instead of blending two.
    """CREATE TABLE IF NOT EXISTS windows (
        window_start INTEGER NOT NULL,
        pool TEXT NOT NULL,
        role TEXT NOT NULL,
        replica_seconds REAL NOT NULL,
        usd REAL NOT NULL,
        usd_per_replica_hour REAL NOT NULL,
        price_source TEXT NOT NULL,
        requests INTEGER NOT NULL,
        errors INTEGER NOT NULL,
        PRIMARY KEY (window_start, pool, usd_per_replica_hour, price_source)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS watermarks (
        pool TEXT PRIMARY KEY,
        at REAL NOT NULL,
        role TEXT NOT NULL,
        replicas INTEGER NOT NULL,
        usd_per_replica_hour REAL NOT NULL,
        price_source TEXT NOT NULL,
        requests_total INTEGER,
        errors_total INTEGER
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS decisions (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        decision TEXT NOT NULL,
        reason TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS controller_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        at REAL NOT NULL,
        policy_state TEXT NOT NULL CHECK (json_valid(policy_state)),
        status TEXT NOT NULL CHECK (json_valid(status))
    )""",
)

_ADD_TO_WINDOW = """
    INSERT INTO windows (window_start, pool, role, replica_seconds, usd,
                         usd_per_replica_hour, price_source, requests, errors)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (window_start, pool, usd_per_replica_hour, price_source) DO UPDATE SET
        role = excluded.role,
        replica_seconds = replica_seconds + excluded.replica_seconds,
        usd = usd + excluded.usd,
        requests = requests + excluded.requests,
        errors = errors + excluded.errors
"""

_SET_WATERMARK = """
    INSERT OR REPLACE INTO watermarks (pool, at, role, replicas, usd_per_replica_hour,
                                       price_source, requests_total, errors_total)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""

_READ_WATERMARKS = """
    SELECT pool, at, role, replicas, usd_per_replica_hour, price_source,
           requests_total, errors_total
    FROM watermarks
"""

_SPEND_COLUMNS: dict[str, str] = {"pool": "pool", "window": "window_start", "role": "role"}

# A window counts whole when it overlaps [since, until): window_start + window > since.
_SPEND = """
    SELECT {key}, SUM(replica_seconds), SUM(usd), SUM(requests), SUM(errors),
           json_group_array(DISTINCT price_source)
    FROM windows
    WHERE window_start < :until AND window_start > :since - :window
    GROUP BY {key} ORDER BY {key}
"""

_WINDOWS = """
    SELECT window_start, pool, role, replica_seconds, usd, usd_per_replica_hour,
           price_source, requests, errors
    FROM windows
    WHERE window_start < :until AND window_start > :since - :window
    ORDER BY window_start, pool, usd_per_replica_hour, price_source
"""

_MONTH_TO_DATE = """
    SELECT COALESCE(SUM(usd), 0.0) FROM windows
    WHERE window_start < :until AND window_start > :since - :window AND role = :role
"""


class LedgerError(PermanentError):
    """The ledger file cannot be used as asked; the message says what to change."""


@dataclass(frozen=True)
class PoolUsage:
    """One pool at one tick, as the controller loop sees it."""

    pool: str
    role: str
    """"private" or "burst"; spend can be summed by role (the budget caps burst)."""
    replicas: int
    """Replicas running now, ready, starting or draining: what is billed."""
    usd_per_replica_hour: float
    price_source: str
    requests_total: int | None
    """Cumulative served-requests counter from the gateway; None: unknown this tick."""
    errors_total: int | None
    """Cumulative failed-requests counter; None: unknown this tick."""

    @classmethod
    def of(
        cls,
        pool: PoolConfig,
        replicas: int,
        requests_total: int | None,
        errors_total: int | None,
    ) -> PoolUsage:
        """The usage of a configured pool, priced as its config says."""
        return cls(
            pool.name,
            pool.role,
            replicas,
            pool.price.hourly_usd,
            pool.price.source,
            requests_total,
            errors_total,
        )


@dataclass(frozen=True)
class SpendRow:
    """Spend of one pool, window or role over a time range."""

    key: str | int
    """Pool name, role, or window start (seconds since the epoch)."""
    replica_hours: float
    usd: float
    requests: int
    errors: int
    price_sources: tuple[str, ...]
    """Every price source the range was charged at, sorted."""

    @property
    def usd_per_1k_requests(self) -> float | None:
        """Cost of 1,000 served requests; None when nothing was served."""
        return self.usd / self.requests * 1000 if self.requests else None


@dataclass(frozen=True)
class WindowRow:
    """One pool in one window at one price, as stored: what `spend` sums, for audits."""

    window_start: int
    pool: str
    role: str
    replica_seconds: float
    usd: float
    usd_per_replica_hour: float
    price_source: str
    requests: int
    errors: int


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


@dataclass(frozen=True)
class _Watermark:
    """How far a pool is charged, and what ran from then on."""

    pool: str
    at: float
    role: str
    replicas: int
    usd_per_replica_hour: float
    price_source: str
    requests_total: int | None
    errors_total: int | None


class Ledger:
    """Spend ledger, decision log and controller state in one SQLite file."""

    def __init__(self, path: Path | str, window_seconds: int | None = 60) -> None:
        """Open or create the file. window_seconds None: whatever the file was made with.

        A file keeps the window length it was created with: rows of two lengths would
        make `spend --by window` mix incomparable buckets.
        """
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._ensure_schema(window_seconds or 60)
            self.window_seconds = self._stored_window(window_seconds)
        except BaseException:
            self._db.close()
            raise

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
        self._db.close()

    # -- spend ------------------------------------------------------------------------

    def record(self, at: float, usages: Sequence[PoolUsage]) -> None:
        """Charge every pool up to `at` and move its watermark there, in one transaction."""
        _check_usages(at, usages)
        with self._transaction():
            marks = self._watermarks()
            charges: list[tuple[object, ...]] = []
            advanced: list[tuple[object, ...]] = []
            for usage in usages:
                mark = marks.get(usage.pool)
                if mark is not None and at <= mark.at:
                    continue  # already recorded: a replay after a restart
                if mark is not None:
                    charges.extend(self._charges(mark, usage, at))
                advanced.append(_advance(mark, usage, at))
            self._db.executemany(_ADD_TO_WINDOW, charges)
            self._db.executemany(_SET_WATERMARK, advanced)

    def watermark(self, pool: str) -> float | None:
        """The last `at` recorded for a pool (None: never): how far its spend is known."""
        row = self._db.execute("SELECT at FROM watermarks WHERE pool = ?", (pool,)).fetchone()
        return None if row is None else float(row[0])

    def spend(self, since: float, until: float, by: SpendKey) -> list[SpendRow]:
        """Spend per pool, window or role, over the windows that overlap [since, until)."""
        if by not in _SPEND_COLUMNS:
            raise ValueError(f"by must be one of {', '.join(_SPEND_COLUMNS)}, not {by!r}")
        query = _SPEND.format(key=_SPEND_COLUMNS[by])
        rows = self._db.execute(query, self._range(since, until)).fetchall()
        return [_spend_row(*row) for row in rows]

    def windows(self, since: float, until: float) -> list[WindowRow]:
        """The stored rows of the windows that overlap [since, until), oldest first."""
        rows = self._db.execute(_WINDOWS, self._range(since, until)).fetchall()
        return [WindowRow(*row) for row in rows]

    def month_to_date_usd(self, at: float, role: str = "burst") -> float:
        """Spend of a role since the start of the UTC month holding `at` (budget caps)."""
        parameters = {**self._range(_month_start(at), at), "role": role}
        return float(self._db.execute(_MONTH_TO_DATE, parameters).fetchone()[0])

    # -- decisions and state ----------------------------------------------------------

    def log_decisions(self, at: float, decisions: Sequence[Decision]) -> None:
        """Append one tick's decisions, each with what it said and why."""
        rows = [(at, type(d).__name__, d.describe(), d.reason) for d in decisions]
        if not rows:
            return
        with self._transaction():
            self._db.executemany(
                "INSERT INTO decisions (at, kind, decision, reason) VALUES (?, ?, ?, ?)", rows
            )

    def recent_decisions(self, limit: int = 10) -> list[DecisionRecord]:
        """The newest decisions first, in the order they were logged (not by clock)."""
        rows = self._db.execute(
            "SELECT at, kind, decision, reason FROM decisions ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [DecisionRecord(*row) for row in rows]

    def decisions_since(self, at: float) -> list[DecisionRecord]:
        """Decisions logged at or after `at`, oldest first in the order they were logged
        (by id, not by clock): what a drill that began at `at` made the controller do."""
        rows = self._db.execute(
            "SELECT at, kind, decision, reason FROM decisions WHERE at >= ? ORDER BY id",
            (at,),
        ).fetchall()
        return [DecisionRecord(*row) for row in rows]

    def save_controller_state(self, at: float, policy_state: str, status: str) -> None:
        """Replace the saved state; both blobs must be JSON text."""
        try:
            with self._transaction():
                self._db.execute(
                    "INSERT OR REPLACE INTO controller_state VALUES (1, ?, ?, ?)",
                    (at, policy_state, status),
                )
        except sqlite3.IntegrityError as error:
            raise ValueError(f"controller state must be JSON text: {error}") from None

    def load_controller_state(self) -> ControllerState | None:
        """The last saved state, or None on a fresh file."""
        row = self._db.execute(
            "SELECT at, policy_state, status FROM controller_state WHERE id = 1"
        ).fetchone()
        return None if row is None else ControllerState(*row)

    # -- internals --------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE: take the write lock first, so no reader ever sees half of it."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def _ensure_schema(self, window_seconds: int) -> None:
        """Create the tables once; a second process opening at the same time waits."""
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"{self.path} was written by a newer spillover (schema {version}, "
                f"this one knows {SCHEMA_VERSION}); upgrade spillover to read it"
            )
        if version == SCHEMA_VERSION:
            return
        with self._transaction():
            for statement in _SCHEMA:
                self._db.execute(statement)
            self._db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('window_seconds', ?)", (str(window_seconds),)
            )
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _stored_window(self, asked: int | None) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'window_seconds'").fetchone()
        stored = int(row[0])
        if asked is not None and asked != stored:
            raise LedgerError(
                f"{self.path} keeps {stored} s ledger windows, not {asked} s: set "
                f"controller.ledger_window_seconds back to {stored} or use a new database file"
            )
        return stored

    def _watermarks(self) -> dict[str, _Watermark]:
        return {row[0]: _Watermark(*row) for row in self._db.execute(_READ_WATERMARKS)}

    def _charges(self, mark: _Watermark, usage: PoolUsage, at: float) -> list[tuple[object, ...]]:
        """Window increments for [mark.at, at]; counter deltas go to the last piece."""
        pieces = list(_split(mark.at, at, self.window_seconds))
        requests = _counter_delta(mark.requests_total, usage.requests_total)
        errors = _counter_delta(mark.errors_total, usage.errors_total)
        rows: list[tuple[object, ...]] = []
        for index, (window_start, seconds) in enumerate(pieces):
            last = index == len(pieces) - 1
            replica_seconds = mark.replicas * seconds
            rows.append(
                (
                    window_start,
                    usage.pool,
                    mark.role,
                    replica_seconds,
                    replica_seconds * mark.usd_per_replica_hour / 3600,
                    mark.usd_per_replica_hour,
                    mark.price_source,
                    requests if last else 0,
                    errors if last else 0,
                )
            )
        return rows

    def _range(self, since: float, until: float) -> dict[str, float]:
        return {"since": since, "until": until, "window": self.window_seconds}


def _check_usages(at: float, usages: Sequence[PoolUsage]) -> None:
    """Refuse a tick that would corrupt the sums rather than store it."""
    if not math.isfinite(at):
        raise ValueError(f"at must be a finite time, not {at!r}")
    names = [usage.pool for usage in usages]
    if len(set(names)) != len(names):
        raise ValueError(f"each pool may appear once per tick: {sorted(names)}")
    for usage in usages:
        if usage.replicas < 0:
            raise ValueError(f"pool {usage.pool}: replicas cannot be negative ({usage.replicas})")


def _split(begin: float, end: float, window: int) -> Iterator[tuple[int, float]]:
    """(window_start, seconds) for each epoch-aligned window that [begin, end) touches."""
    cursor = begin
    while cursor < end:
        window_start = math.floor(cursor / window) * window
        stop = min(window_start + window, end)
        yield window_start, stop - cursor
        cursor = stop


def _counter_delta(last: int | None, new: int | None) -> int:
    """Requests since the last known value; a drop means the counter restarted at 0."""
    if new is None or last is None:
        return 0
    return new if new < last else new - last


def _advance(mark: _Watermark | None, usage: PoolUsage, at: float) -> tuple[object, ...]:
    """The new watermark row: `at`, what runs from now on, the newest known counters."""
    requests = usage.requests_total
    errors = usage.errors_total
    if mark is not None:
        requests = mark.requests_total if requests is None else requests
        errors = mark.errors_total if errors is None else errors
    return (
        usage.pool,
        at,
        usage.role,
        usage.replicas,
        usage.usd_per_replica_hour,
        usage.price_source,
        requests,
        errors,
    )


def _spend_row(
    key: str | int,
    replica_seconds: float,
    usd: float,
    requests: int,
    errors: int,
    sources_json: str,
) -> SpendRow:
    return SpendRow(
        key=key,
        replica_hours=replica_seconds / 3600,
        usd=usd,
        requests=requests,
        errors=errors,
        price_sources=tuple(sorted(json.loads(sources_json))),
    )


def _month_start(at: float) -> float:
    moment = datetime.fromtimestamp(at, timezone.utc)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()
