"""SQL for a table whose columns are the fields of a dataclass, so no query lists them.

The fields are the one definition of a table's columns, in their order: inserts, upserts
and selects are built from them, and a row read back is the dataclass again. The
schema that creates the columns is history (migrations.py) and is not built from the
fields; tests/controller/test_ledger_store.py checks that the two agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Row = TypeVar("Row", bound="DataclassInstance")


@dataclass(frozen=True)
class Table(Generic[Row]):
    """One table and the dataclass its rows are."""

    name: str
    row_type: type[Row]
    fixed: Mapping[str, object] = field(default_factory=dict)
    """Columns with one value in every row, written but never read back (a singleton id)."""

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(column.name for column in fields(self.row_type))

    def insert(self, conflict_key: Sequence[str] = (), summed: Sequence[str] = ()) -> str:
        """INSERT of one row; with a conflict key, a row that exists takes the new values,
        except the `summed` columns, which add the new value to theirs."""
        names = (*self.fixed, *self.columns)
        sql = f"INSERT INTO {self.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        if not conflict_key:
            return sql
        updates = [
            f"{name} = {name} + excluded.{name}" if name in summed else f"{name} = excluded.{name}"
            for name in names
            if name not in conflict_key
        ]
        return f"{sql} ON CONFLICT ({', '.join(conflict_key)}) DO UPDATE SET {', '.join(updates)}"

    def select(self, where: str = "", order_by: str = "") -> str:
        """SELECT of whole rows, in field order (what `read` expects)."""
        sql = f"SELECT {', '.join(self.columns)} FROM {self.name}"
        if where:
            sql += f" WHERE {where}"
        if order_by:
            sql += f" ORDER BY {order_by}"
        return sql

    def values(self, row: Row) -> tuple[object, ...]:
        """The parameters of `insert` for one row."""
        return (*self.fixed.values(), *(getattr(row, name) for name in self.columns))

    def read(self, values: Sequence[object]) -> Row:
        """A row from what `select` returned."""
        return self.row_type(*values)
