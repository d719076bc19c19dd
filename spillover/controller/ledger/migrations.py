"""The ledger file's schema as its history: every change ever made, oldest first.

A file's `PRAGMA user_version` is how many of these it has applied; the store applies
the rest in order when it opens the file. A migration is never edited once released:
a file made by it exists somewhere. A change of schema is a new entry at the end (and,
when it changes a table's columns, a change to that table's row dataclass).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    """One step from the previous schema version to the next."""

    purpose: str
    """What the step is for, named in the error if it fails."""
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "spend windows, watermarks, decision log and controller state",
        (
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
            # Keyed by window first: spend queries select a time range across all pools.
            # The price is part of the key, so a mid-window price change adds a row
            # instead of blending two.
            """CREATE TABLE windows (
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
            """CREATE TABLE watermarks (
                pool TEXT PRIMARY KEY,
                at REAL NOT NULL,
                role TEXT NOT NULL,
                replicas INTEGER NOT NULL,
                usd_per_replica_hour REAL NOT NULL,
                price_source TEXT NOT NULL,
                requests_total INTEGER,
                errors_total INTEGER
            ) WITHOUT ROWID""",
            """CREATE TABLE decisions (
                id INTEGER PRIMARY KEY,
                at REAL NOT NULL,
                kind TEXT NOT NULL,
                decision TEXT NOT NULL,
                reason TEXT NOT NULL
            )""",
            """CREATE TABLE controller_state (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                at REAL NOT NULL,
                policy_state TEXT NOT NULL CHECK (json_valid(policy_state)),
                status TEXT NOT NULL CHECK (json_valid(status))
            )""",
        ),
    ),
    Migration(
        "index the decision log by time",
        # A drill reads the decisions since it began (`decisions_since`): with weeks of
        # ticks in the log that must not scan all of it.
        ("CREATE INDEX decisions_by_time ON decisions (at)",),
    ),
    Migration(
        "spend by category: storage, network, labour, operations beside compute; busy share",
        (
            # Compute stays in `windows` (a market-price feed writes there unchanged);
            # the other categories get rows of their own, keyed like compute's by price
            # and source so a mid-window change adds a row.
            """CREATE TABLE category_windows (
                window_start INTEGER NOT NULL,
                pool TEXT NOT NULL,
                role TEXT NOT NULL,
                category TEXT NOT NULL,
                unit TEXT NOT NULL,
                unit_price REAL NOT NULL,
                source TEXT NOT NULL,
                quantity REAL NOT NULL,
                usd REAL NOT NULL,
                PRIMARY KEY (window_start, pool, category, unit, unit_price, source)
            ) WITHOUT ROWID""",
            # Rows written before this knew no busy share: 0 measured, so unknown.
            "ALTER TABLE windows ADD COLUMN busy_replica_seconds REAL NOT NULL DEFAULT 0",
            "ALTER TABLE windows ADD COLUMN measured_replica_seconds REAL NOT NULL DEFAULT 0",
            # A watermark from before carries no category rates: its next interval is
            # charged as compute alone, at the all-in price it was recorded with.
            "ALTER TABLE watermarks ADD COLUMN category_rates TEXT NOT NULL DEFAULT '[]'",
        ),
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)
"""The version of a file with every migration applied."""
