"""A ledger file's schema is brought up to date in order, all or nothing, and a file
this spillover cannot read is refused untouched."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from spillover.controller.decisions import Mode, SetMode
from spillover.controller.ledger import SCHEMA_VERSION, Ledger, LedgerError, PoolUsage
from spillover.controller.ledger.journal import CONTROLLER_STATE, DECISIONS
from spillover.controller.ledger.migrations import MIGRATIONS, Migration
from spillover.controller.ledger.spend import CATEGORY_WINDOWS, WATERMARKS, WINDOWS
from spillover.controller.ledger.store import LedgerFile
from spillover.controller.ledger.tables import Table

EVER = (-1e10, 1e10)

# The schema as spillover wrote it at version 1, word for word: what files in use hold.
VERSION_1_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)
    WITHOUT ROWID""",
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


def write_version_1_file(database: Path) -> None:
    """A 300 s ledger a version-1 controller left: one charged window, decisions, state."""
    raw = sqlite3.connect(database, isolation_level=None)
    try:
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("BEGIN")
        for statement in VERSION_1_SCHEMA:
            raw.execute(statement)
        raw.execute("INSERT INTO meta VALUES ('window_seconds', '300')")
        raw.execute(
            "INSERT INTO windows VALUES (600, 'burst', 'burst', 240.0, 0.24, 3.6, 'spot', 70, 2)"
        )
        raw.execute(
            "INSERT INTO watermarks VALUES ('burst', 840.0, 'burst', 2, 3.6, 'spot', 70, 2)"
        )
        raw.execute(
            "INSERT INTO decisions (at, kind, decision, reason) VALUES "
            "(600.0, 'SetMode', 'mode burst', 'overflow'), "
            "(601.0, 'ScalePool', 'scale burst to 2', 'needs 2'), "
            "(602.0, 'ScalePool', 'scale burst to 3', 'needs 3')"
        )
        raw.execute("""INSERT INTO controller_state VALUES (1, 840.0, '{"peak": 3}', '{}')""")
        raw.execute("PRAGMA user_version = 1")
        raw.execute("COMMIT")
    finally:
        raw.close()


def contents(database: Path) -> tuple[int, list[str]]:
    """The file's schema version and every statement that would rebuild it."""
    raw = sqlite3.connect(database)
    try:
        return raw.execute("PRAGMA user_version").fetchone()[0], list(raw.iterdump())
    finally:
        raw.close()


def test_a_version_1_file_is_migrated_with_its_rows_intact(tmp_path: Path) -> None:
    database = tmp_path / "controller.db"
    write_version_1_file(database)

    with Ledger(database, window_seconds=None) as ledger:
        assert ledger.window_seconds == 300
        assert [(r.window_start, r.pool, r.usd, r.requests) for r in ledger.windows(*EVER)] == [
            (600, "burst", 0.24, 70)
        ]
        assert [d.decision for d in ledger.decisions_since(601.0)] == [
            "scale burst to 2",
            "scale burst to 3",
        ]
        state = ledger.load_controller_state()
        assert state is not None and state.policy_state == '{"peak": 3}'
        # Charging carries on from the old watermark: 2 replicas for 60 s, 30 more requests.
        ledger.record(900.0, [PoolUsage("burst", "burst", 0, 3.6, "spot", 100, 2)])
        (row,) = ledger.spend(*EVER, by="pool")
        assert (row.replica_hours * 3600, row.requests) == (240.0 + 120.0, 100)

    version, dump = contents(database)
    assert version == SCHEMA_VERSION == 3
    assert any("decisions_by_time" in statement for statement in dump)


def test_a_fresh_file_gets_every_migration(tmp_path: Path) -> None:
    database = tmp_path / "controller.db"
    Ledger(database).close()

    version, dump = contents(database)
    assert version == len(MIGRATIONS)
    assert any("decisions_by_time" in statement for statement in dump)


def test_a_file_from_the_future_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    database = tmp_path / "controller.db"
    with Ledger(database) as ledger:
        ledger.log_decisions(1.0, [SetMode(Mode.BURST, "overflow")])
    raw = sqlite3.connect(database, isolation_level=None)
    raw.execute("PRAGMA journal_mode=DELETE")  # so any write would show in the file itself
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    before = database.read_bytes()

    with pytest.raises(LedgerError) as refused:
        Ledger(database)

    message = str(refused.value)
    assert f"schema version {SCHEMA_VERSION + 1}" in message
    assert f"versions up to {SCHEMA_VERSION}" in message
    assert "newer spillover" in message and str(database) in message
    assert database.read_bytes() == before
    assert not Path(f"{database}-wal").exists()


def test_a_migration_that_fails_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    """The step after the last needs one decision per kind; the file has two ScalePools, so
    it fails, and the versions applied before it in the same transaction are undone."""
    database = tmp_path / "controller.db"
    write_version_1_file(database)
    before = contents(database)
    one_per_kind = Migration(
        "one decision per kind", ("CREATE UNIQUE INDEX one_per_kind ON decisions (kind)",)
    )

    with pytest.raises(LedgerError) as failed:
        LedgerFile(database, None, migrations=(*MIGRATIONS, one_per_kind))

    message = str(failed.value)
    assert f"schema version {SCHEMA_VERSION + 1} (one decision per kind) failed" in message
    assert "left at version 1" in message
    assert contents(database) == before


def test_files_opened_at_once_are_migrated_once(tmp_path: Path) -> None:
    database = tmp_path / "controller.db"
    write_version_1_file(database)
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_it() -> None:
        try:
            start.wait()
            Ledger(database, window_seconds=None).close()
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert contents(database)[0] == SCHEMA_VERSION


TABLES: list[Table] = [WINDOWS, CATEGORY_WINDOWS, WATERMARKS, DECISIONS, CONTROLLER_STATE]
FILLED_BY_SQLITE = {"decisions": {"id"}}
"""Columns no row writes: the log's order, assigned on insert."""


@pytest.mark.parametrize("origin", ["fresh", "migrated-from-1"])
@pytest.mark.parametrize("table", TABLES, ids=[table.name for table in TABLES])
def test_every_table_has_exactly_the_columns_of_its_row_type(
    tmp_path: Path, origin: str, table: Table
) -> None:
    """The migrations and the row dataclasses describe the same columns."""
    database = tmp_path / "controller.db"
    if origin == "migrated-from-1":
        write_version_1_file(database)
    Ledger(database, window_seconds=None).close()
    raw = sqlite3.connect(database)
    try:
        stored = {row[1] for row in raw.execute(f"PRAGMA table_info({table.name})")}
    finally:
        raw.close()

    written = {*table.fixed, *table.columns}
    assert stored - FILLED_BY_SQLITE.get(table.name, set()) == written


def test_a_version_1_file_upgrades_to_spend_by_category(tmp_path: Path) -> None:
    """Old rows are compute at the all-in price they were charged at, busy share unknown;
    the old watermark, which carries no category rates, charges its interval as compute
    alone (never twice); the next intervals add the categories the usage carries."""
    from spillover.controller.ledger import CategoryRate

    database = tmp_path / "controller.db"
    write_version_1_file(database)
    bucket = CategoryRate("storage", "GB-month", 0.05, "S3", "seconds", 1 / 3600)

    with Ledger(database, window_seconds=None) as ledger:
        (old,) = ledger.bill(*EVER).lines
        assert (old.category, old.quantity, old.unit_price, old.usd) == (
            "compute",
            240.0 / 3600,
            3.6,
            0.24,
        )
        (use,) = ledger.bill(*EVER).pools
        assert (use.used_usd, use.idle_usd, use.unmeasured_usd) == (0.0, 0.0, pytest.approx(0.24))

        usage = PoolUsage("burst", "burst", 2, 3.6, "spot", 100, 2, busy_share=0.5, rates=(bucket,))
        ledger.record(900.0, [usage])  # [840, 900] at the old watermark: compute only
        assert {line.category for line in ledger.bill(*EVER).lines} == {"compute"}
        ledger.record(1200.0, [usage])  # [900, 1200] at the rates recorded at 900
        lines = {line.category: line for line in ledger.bill(*EVER).lines}
        (use,) = ledger.bill(*EVER).pools

    assert lines["storage"].quantity == pytest.approx(300 / 3600)
    assert lines["storage"].usd == pytest.approx(300 / 3600 * 0.05)
    assert lines["compute"].usd == pytest.approx((240 + 120 + 600) / 3600 * 3.6)
    # Busy halves of [840, 900] and [900, 1200]; the version-1 row stays unmeasured.
    assert use.used_usd == pytest.approx(use.idle_usd) == pytest.approx(360 / 3600 * 3.6)
    assert use.unmeasured_usd == pytest.approx(0.24)
