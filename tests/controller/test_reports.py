"""`spillover spend` reads --since as people write it and prints what the ledger summed."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone

import pytest

from spillover.controller.ledger import SpendRow
from spillover.controller.reports import format_spend, parse_since
from spillover.errors import SpilloverError

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=timezone.utc).timestamp()
WINDOW_START = int(NOW) - 60

ROWS = [
    SpendRow("burst", 2.0, 7.5, 3000, 12, ("AWS spot, g5.xlarge", "on-demand")),
    SpendRow("private", 4.0, 2.0, 0, 0, ("amortized",)),
]


@pytest.mark.parametrize(
    ("text", "seconds_back"),
    [
        ("90s", 90),
        ("15m", 900),
        ("1h", 3600),
        ("2d", 2 * 86400),
        ("1w", 7 * 86400),
        ("1.5h", 5400),
        (" 1h\n", 3600),
        ("2026-11-23T03:00:00Z", 0),
        ("2026-11-23T02:00:00z", 3600),
        ("2026-11-23T04:00:00+02:00", 3600),
        ("2026-11-23T02:30", 1800),
        ("2026-11-23", 3 * 3600),
    ],
    ids=[
        "seconds",
        "minutes",
        "hours",
        "days",
        "weeks",
        "fractional",
        "surrounding-space",
        "iso-zulu-now",
        "iso-lower-z",
        "iso-with-offset",
        "iso-without-offset-is-utc",
        "iso-date",
    ],
)
def test_parse_since_reads_durations_and_iso_times(text: str, seconds_back: float) -> None:
    assert parse_since(text, NOW) == NOW - seconds_back


@pytest.mark.parametrize(
    "text",
    ["", "1", "h", "1y", "-1h", "1h30m", "1 h", "yesterday", "2026-13-01", "now"],
    ids=[
        "empty",
        "no-unit",
        "no-number",
        "years",
        "negative",
        "compound",
        "space-inside",
        "word",
        "month-13",
        "now",
    ],
)
def test_parse_since_names_the_bad_value_and_the_accepted_forms(text: str) -> None:
    with pytest.raises(SpilloverError) as raised:
        parse_since(text, NOW)

    message = str(raised.value)
    assert repr(text) in message
    assert "90s, 15m, 1h, 2d, 1w" in message
    assert "ISO-8601" in message


def test_parse_since_refuses_a_time_in_the_future() -> None:
    with pytest.raises(SpilloverError, match=r"'2026-11-24' is in the future"):
        parse_since("2026-11-24", NOW)


def test_csv_has_a_header_and_one_line_per_row() -> None:
    text = format_spend(ROWS, "csv", by="pool")

    assert text.splitlines()[0] == (
        "pool,replica_hours,usd,requests,errors,usd_per_1k_requests,price_sources"
    )
    records = list(csv.DictReader(io.StringIO(text)))
    assert records == [
        {
            "pool": "burst",
            "replica_hours": "2.0",
            "usd": "7.5",
            "requests": "3000",
            "errors": "12",
            "usd_per_1k_requests": "2.5",
            "price_sources": "AWS spot, g5.xlarge; on-demand",
        },
        {
            "pool": "private",
            "replica_hours": "4.0",
            "usd": "2.0",
            "requests": "0",
            "errors": "0",
            "usd_per_1k_requests": "",
            "price_sources": "amortized",
        },
    ]


def test_json_is_a_list_of_objects_with_numbers_as_numbers() -> None:
    records = json.loads(format_spend(ROWS, "json", by="role"))

    assert records[0] == {
        "role": "burst",
        "replica_hours": 2.0,
        "usd": 7.5,
        "requests": 3000,
        "errors": 12,
        "usd_per_1k_requests": 2.5,
        "price_sources": ["AWS spot, g5.xlarge", "on-demand"],
    }
    assert records[1]["usd_per_1k_requests"] is None
    assert isinstance(records[1]["requests"], int)


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_window_starts_print_as_utc_times(fmt: str) -> None:
    row = SpendRow(WINDOW_START, 1 / 60, 0.05, 10, 0, ("amortized",))

    assert "2026-11-23T02:59:00Z" in format_spend([row], fmt, by="window")  # type: ignore[arg-type]


def test_table_has_dollar_and_per_thousand_columns_and_a_total() -> None:
    lines = format_spend(ROWS, "table", by="pool").splitlines()

    assert lines[0].split() == [
        "pool", "replica-h", "$", "requests", "errors", "$/1k", "req", "price", "sources"
    ]  # fmt: skip
    assert lines[2].split()[:6] == ["burst", "2.000", "7.5000", "3,000", "12", "2.5000"]
    assert lines[3].split()[:6] == ["private", "4.000", "2.0000", "0", "0", "-"]
    assert lines[4].split() == ["total", "6.000", "9.5000", "3,000", "12", "3.1667"]
    assert lines[2].endswith("AWS spot, g5.xlarge; on-demand")


def test_table_numbers_are_right_aligned() -> None:
    lines = format_spend(ROWS, "table", by="pool").splitlines()
    dollars_end = lines[0].index("$") + 1

    assert {line[dollars_end - 6 : dollars_end] for line in lines[2:]} == {
        "7.5000",
        "2.0000",
        "9.5000",
    }


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("csv", 1), ("json", 1), ("table", 3)],
    ids=["csv-header-only", "json-empty-list", "table-with-zero-total"],
)
def test_an_empty_range_still_prints_a_well_formed_report(fmt: str, expected: int) -> None:
    text = format_spend([], fmt, by="pool")  # type: ignore[arg-type]

    assert text.endswith("\n")
    assert len(text.splitlines()) == expected
    if fmt == "json":
        assert json.loads(text) == []
    if fmt == "table":
        assert text.splitlines()[-1].split() == ["total", "0.000", "0.0000", "0", "0", "-"]
