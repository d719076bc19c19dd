"""Spend as people read it: the `--since` of `spillover spend`, and its table, CSV or JSON.

The ledger answers with rows; this module only turns text into a time and rows into
text, so the CLI, scripts and tests share one reading of both.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Literal, Protocol

from spillover.errors import SpilloverError
from spillover.tables import format_table

SpendGrouping = Literal["pool", "window", "role"]
SpendFormat = Literal["table", "csv", "json"]

SECONDS_PER_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
ACCEPTED_SINCE = (
    "a duration back from now (90s, 15m, 1h, 2d, 1w) or an ISO-8601 time "
    "(2026-11-23T03:00:00Z; a time without an offset is UTC)"
)

_KEY_COLUMN: dict[str, str] = {"pool": "pool", "window": "window_start", "role": "role"}
_FIELDS = ("replica_hours", "usd", "requests", "errors", "usd_per_1k_requests", "price_sources")
_TABLE_HEADERS = ("replica-h", "$", "requests", "errors", "$/1k req", "price sources")
_RIGHT_ALIGNED = range(1, 6)
"""Table columns holding numbers: pre-formatted text, so aligned here, not by format_table."""


class SpendLike(Protocol):
    """What a report needs of one row (the ledger's SpendRow has it)."""

    @property
    def key(self) -> str | int: ...
    @property
    def replica_hours(self) -> float: ...
    @property
    def usd(self) -> float: ...
    @property
    def requests(self) -> int: ...
    @property
    def errors(self) -> int: ...
    @property
    def usd_per_1k_requests(self) -> float | None: ...
    @property
    def price_sources(self) -> tuple[str, ...]: ...


def parse_since(text: str, now: float) -> float:
    """The start of a report, from a duration back from `now` or an ISO-8601 time."""
    value = text.strip()
    duration = _DURATION.fullmatch(value)
    if duration is not None:
        return now - float(duration[1]) * SECONDS_PER_UNIT[duration[2]]
    moment = _parse_iso(value)
    if moment is None:
        raise SpilloverError(f"cannot read {text!r} as a start time: give {ACCEPTED_SINCE}")
    if moment > now:
        raise SpilloverError(
            f"{text!r} is in the future ({_iso(moment)}); spend is only known up to now"
        )
    return moment


def format_spend(rows: Sequence[SpendLike], fmt: SpendFormat, by: SpendGrouping) -> str:
    """Rows as an aligned table with a total, as CSV with a header, or as a JSON list."""
    if by not in _KEY_COLUMN:
        raise ValueError(f"by must be one of {', '.join(_KEY_COLUMN)}, not {by!r}")
    if fmt == "table":
        return _table(rows, by)
    if fmt == "csv":
        return _csv(rows, by)
    if fmt == "json":
        return json.dumps([_record(row, by) for row in rows], indent=2) + "\n"
    raise ValueError(f"fmt must be table, csv or json, not {fmt!r}")


def _parse_iso(value: str) -> float | None:
    """Seconds since the epoch, or None when `value` is not ISO-8601."""
    if value[-1:] in ("Z", "z"):  # Python 3.10's fromisoformat does not know Z
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key_text(row: SpendLike, by: str) -> str:
    """Window starts as UTC times people and spreadsheets read; names as they are."""
    return _iso(row.key) if by == "window" and not isinstance(row.key, str) else str(row.key)


def _record(row: SpendLike, by: str) -> dict[str, object]:
    """One row with numbers as numbers (rounded to a millionth, past any billing precision)."""
    per_1k = row.usd_per_1k_requests
    return {
        _KEY_COLUMN[by]: _key_text(row, by),
        "replica_hours": round(row.replica_hours, 6),
        "usd": round(row.usd, 6),
        "requests": row.requests,
        "errors": row.errors,
        "usd_per_1k_requests": None if per_1k is None else round(per_1k, 6),
        "price_sources": list(row.price_sources),
    }


def _csv(rows: Sequence[SpendLike], by: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([_KEY_COLUMN[by], *_FIELDS])
    for row in rows:
        record = _record(row, by)
        record["price_sources"] = "; ".join(row.price_sources)
        writer.writerow(["" if value is None else value for value in record.values()])
    return out.getvalue()


def _table(rows: Sequence[SpendLike], by: str) -> str:
    requests = sum(row.requests for row in rows)
    usd = sum(row.usd for row in rows)
    total = [
        "total",
        *_numbers(
            sum(row.replica_hours for row in rows),
            usd,
            requests,
            sum(row.errors for row in rows),
            usd / requests * 1000 if requests else None,
        ),
        "",
    ]
    cells = [[_key_text(row, by), *_numbers_of(row), "; ".join(row.price_sources)] for row in rows]
    headers = [_KEY_COLUMN[by], *_TABLE_HEADERS]
    _align_right(headers, [*cells, total])
    return format_table(headers, [*cells, total]) + "\n"


def _numbers_of(row: SpendLike) -> list[str]:
    return _numbers(row.replica_hours, row.usd, row.requests, row.errors, row.usd_per_1k_requests)


def _numbers(
    replica_hours: float, usd: float, requests: int, errors: int, per_1k: float | None
) -> list[str]:
    """Cents are too coarse for one window of one replica: dollars get four decimals."""
    return [
        f"{replica_hours:,.3f}",
        f"{usd:,.4f}",
        f"{requests:,}",
        f"{errors:,}",
        "-" if per_1k is None else f"{per_1k:,.4f}",
    ]


def _align_right(headers: list[str], cells: list[list[str]]) -> None:
    """Right-align the number columns in place, headers included."""
    for column in _RIGHT_ALIGNED:
        width = max(len(headers[column]), *(len(row[column]) for row in cells))
        headers[column] = headers[column].rjust(width)
        for row in cells:
            row[column] = row[column].rjust(width)
