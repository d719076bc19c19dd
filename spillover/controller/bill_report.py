"""`spillover spend --by category`: the ledger's bill of quantities as a table, CSV or JSON.

Three parts: the bill (per pool, each category's quantity, unit, unit price, source and
amount, a subtotal per pool, then each category's total); the cost of 1,000 served
recommendations per category; and each pool's compute split into used and idle by
Triton's busy share (OpenCost's convention).
"""

from __future__ import annotations

import csv
import io
import json

from spillover.controller.ledger import CATEGORIES, Bill, BillLine
from spillover.tables import format_table

BILL_HEADERS = ["pool", "category", "quantity", "unit", "unit price $", "amount $", "source"]
_BILL_NUMBERS = (2, 4, 5)
_FIELDS = ("pool", "role", "category", "quantity", "unit", "unit_price", "source", "usd")


def format_bill(bill: Bill, fmt: str) -> str:
    if fmt == "table":
        return _table(bill)
    if fmt == "csv":
        return _csv(bill)
    if fmt == "json":
        return json.dumps(_record(bill), indent=2) + "\n"
    raise ValueError(f"fmt must be table, csv or json, not {fmt!r}")


def _table(bill: Bill) -> str:
    rows: list[list[str]] = []
    for pool in sorted({line.pool for line in bill.lines}):
        lines = [line for line in bill.lines if line.pool == pool]
        rows += [_line_cells(line) for line in lines]
        rows.append([pool, "(all)", "", "", "", _usd(sum(line.usd for line in lines)), ""])
    for category in _categories(bill):
        rows.append(["total", category, "", "", "", _usd(bill.category_usd(category)), ""])
    rows.append(["total", "(all)", "", "", "", _usd(bill.usd), ""])
    headers = list(BILL_HEADERS)
    _align_right(headers, rows, _BILL_NUMBERS)
    parts = [format_table(headers, rows), "", _per_1k_table(bill), "", _use_table(bill)]
    return "\n".join(parts) + "\n"


def _line_cells(line: BillLine) -> list[str]:
    return [
        line.pool,
        line.category,
        f"{line.quantity:,.6g}",
        line.unit,
        f"{line.unit_price:,.6g}",
        _usd(line.usd),
        line.source,
    ]


def _usd(usd: float) -> str:
    """Cents are too coarse for one window of one replica: dollars get four decimals."""
    return f"{usd:,.4f}"


def _categories(bill: Bill) -> list[str]:
    present = {line.category for line in bill.lines}
    return [category for category in CATEGORIES if category in present]


def _per_1k_table(bill: Bill) -> str:
    """$ per 1,000 served requests, per pool and category; '-' where none were served."""
    categories = _categories(bill)
    headers = ["$/1k requests", "requests", *categories, "all"]
    rows = []
    for pool in [*(use.pool for use in bill.pools), None]:
        served = sum(use.requests for use in bill.pools if pool in (None, use.pool))
        per_1k = [bill.usd_per_1k_requests(category, pool) for category in categories]
        all_usd = sum(line.usd for line in bill.lines if pool in (None, line.pool))
        every = all_usd / served * 1000 if served else None
        rows.append([pool or "total", f"{served:,}", *map(_maybe, [*per_1k, every])])
    _align_right(headers, rows, range(1, len(headers)))
    return format_table(headers, rows)


def _use_table(bill: Bill) -> str:
    """Compute used vs idle per pool by Triton's busy share."""
    headers = ["compute by busy share", "used $", "idle $", "unmeasured $", "used"]
    rows = []
    for use in bill.pools:
        measured = use.used_usd + use.idle_usd
        share = f"{use.used_usd / measured:.0%}" if measured > 0 else "-"
        rows.append(
            [use.pool, _usd(use.used_usd), _usd(use.idle_usd), _usd(use.unmeasured_usd), share]
        )
    _align_right(headers, rows, range(1, len(headers)))
    return format_table(headers, rows)


def _maybe(value: float | None) -> str:
    return "-" if value is None else f"{value:,.4f}"


def _align_right(
    headers: list[str], rows: list[list[str]], columns: range | tuple[int, ...]
) -> None:
    for column in columns:
        width = max([len(headers[column]), *(len(row[column]) for row in rows)])
        headers[column] = headers[column].rjust(width)
        for row in rows:
            row[column] = row[column].rjust(width)


def _record(bill: Bill) -> dict[str, object]:
    """Numbers as numbers, rounded to a millionth of their unit (past any billing precision
    for dollars; quantities keep 9 significant digits)."""
    return {
        "lines": [{name: _round(getattr(line, name)) for name in _FIELDS} for line in bill.lines],
        "usd": round(bill.usd, 6),
        "requests": bill.requests,
        "usd_per_1k_requests": {
            category: _round(bill.usd_per_1k_requests(category)) for category in _categories(bill)
        },
        "pools": [
            {
                "pool": use.pool,
                "requests": use.requests,
                "compute_used_usd": round(use.used_usd, 6),
                "compute_idle_usd": round(use.idle_usd, 6),
                "compute_unmeasured_usd": round(use.unmeasured_usd, 6),
            }
            for use in bill.pools
        ],
    }


def _round(value: object) -> object:
    return float(f"{value:.9g}") if isinstance(value, float) else value


def _csv(bill: Bill) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_FIELDS)
    for line in bill.lines:
        writer.writerow([_round(getattr(line, name)) for name in _FIELDS])
    return out.getvalue()
