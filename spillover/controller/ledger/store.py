"""The ledger's SQLite file: opening it, bringing its schema up to date, transactions.

SQLite is the embedded default (one file, no server). WAL mode lets `spillover spend`
and `spillover status` read from other processes while the controller writes, and
every write is one transaction, so a reader sees whole ticks or nothing of them.
This package's modules are the only ones that import sqlite3 (an import-linter
contract says so); everything else reads the file through `Ledger`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from spillover.controller.ledger.migrations import MIGRATIONS, Migration
from spillover.errors import PermanentError
from spillover.settings import DEFAULTS

DEFAULT_WINDOW_SECONDS = 60
"""The window of a file created without one asked for."""


class LedgerError(PermanentError):
    """The ledger file cannot be used as asked; the message says what to change."""


class LedgerFile:
    """One open connection to a ledger file whose schema is up to date."""

    def __init__(
        self,
        path: Path | str,
        window_seconds: int | None,
        migrations: Sequence[Migration] = MIGRATIONS,
    ) -> None:
        """Open or create the file. window_seconds None: whatever the file was made with.

        A file keeps the window length it was created with: rows of two lengths would
        make `spend --by window` mix incomparable buckets.
        """
        self.path = Path(path)
        self.db = sqlite3.connect(
            self.path, timeout=DEFAULTS.ledger.busy_timeout_s, isolation_level=None
        )
        try:
            # Before anything writes (WAL mode is kept in the file): a file this code
            # cannot read is left exactly as it was.
            self._refuse_newer(self._version(), len(migrations))
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._migrate(migrations, window_seconds or DEFAULT_WINDOW_SECONDS)
            self.window_seconds = self._stored_window(window_seconds)
        except BaseException:
            self.db.close()
            raise

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE: take the write lock first, so no reader ever sees half of it."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    def _version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def _refuse_newer(self, version: int, known: int) -> None:
        if version > known:
            raise LedgerError(
                f"{self.path} was written by a newer spillover (schema version {version}; "
                f"this spillover knows versions up to {known}); upgrade spillover to read "
                "it. The file was not changed."
            )

    def _migrate(self, migrations: Sequence[Migration], window_seconds: int) -> None:
        """Apply the migrations the file lacks, in order, all in one transaction.

        The version is read again under the write lock: a second process opening the
        file at the same time waits, then finds nothing left to do.
        """
        if self._version() == len(migrations):
            return
        with self.transaction():
            start = self._version()
            self._refuse_newer(start, len(migrations))
            for version, migration in enumerate(migrations[start:], start=start + 1):
                self._apply(migration, version, start)
            self.db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('window_seconds', ?)", (str(window_seconds),)
            )
            self.db.execute(f"PRAGMA user_version = {len(migrations)}")

    def _apply(self, migration: Migration, version: int, start: int) -> None:
        try:
            for statement in migration.statements:
                self.db.execute(statement)
        except sqlite3.Error as error:
            raise LedgerError(
                f"{self.path}: migrating to schema version {version} ({migration.purpose}) "
                f"failed: {error}. The file was left at version {start}, as it was."
            ) from error

    def _stored_window(self, asked: int | None) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'window_seconds'").fetchone()
        stored = int(row[0])
        if asked is not None and asked != stored:
            raise LedgerError(
                f"{self.path} keeps {stored} s ledger windows, not {asked} s: set "
                f"controller.ledger_window_seconds back to {stored} or use a new database file"
            )
        return stored


def has_schema(path: Path, timeout_seconds: float = 0.1) -> bool:
    """Whether a controller has created its ledger in the file at `path`.

    Read-only: probing never creates or alters the file, so an observer can wait for a
    controller to create it with the window the controller asks for.
    """
    if not path.is_file():
        return False
    probe = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout_seconds)
    try:
        return int(probe.execute("PRAGMA user_version").fetchone()[0]) > 0
    finally:
        probe.close()
