"""`spillover spend reconcile` against Cost Explorer answers set on a moto server.

moto keeps no costs; its /moto-api/static/ce/cost-and-usage-results endpoint queues answers,
and each distinct get_cost_and_usage request takes the next one (moto's documented way).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from spillover.cli import main
from spillover.controller.ledger import Ledger, PoolUsage
from spillover.controller.reconcile import (
    EXPLAIN_BILL_HIGHER,
    EXPLAIN_UNTAGGED,
    Month,
    reconcile,
)
from spillover.errors import SpilloverError
from tests.aws.moto_server import MotoServer

NOV_1 = 1_793_491_200.0  # 2026-11-01T00:00:00Z
HOURS_IN_NOVEMBER = 30 * 24


def write_november(database: Path) -> None:
    """Private 2 replicas, burst_spot 1 replica at $0.40 and burst_ondemand 1 at $1.00, for
    10 h each from Nov 1st; and a burst replica in October and December that must not count."""
    with Ledger(database, window_seconds=3600) as ledger:
        for at in (NOV_1 - 7200, NOV_1 - 3600, NOV_1, NOV_1 + 10 * 3600):
            running = 1 if at < NOV_1 + 10 * 3600 else 0
            ledger.record(
                at,
                [
                    PoolUsage("private", "private", 2, 0.9, "amortized", None, None),
                    PoolUsage("burst_spot", "burst", running, 0.40, "spot", None, None),
                    PoolUsage("burst_ondemand", "burst", running, 1.00, "on-demand", None, None),
                ],
            )
        december = NOV_1 + HOURS_IN_NOVEMBER * 3600
        ledger.record(december, [PoolUsage("burst_spot", "burst", 3, 0.40, "spot", None, None)])
        ledger.record(
            december + 3600, [PoolUsage("burst_spot", "burst", 3, 0.40, "spot", None, None)]
        )


def bill(**groups: float) -> dict[str, Any]:
    """A Cost Explorer answer grouped by spillover:pool ('untagged' stands for '')."""
    return {
        "ResultsByTime": [
            {
                "TimePeriod": {"Start": "2026-11-01", "End": "2026-12-01"},
                "Total": {},
                "Groups": [
                    {
                        "Keys": [f"spillover:pool${'' if tag == 'untagged' else tag}"],
                        "Metrics": {"UnblendedCost": {"Amount": str(usd), "Unit": "USD"}},
                    }
                    for tag, usd in groups.items()
                ],
                "Estimated": False,
            }
        ],
        "DimensionValueAttributes": [],
    }


def reconcile_cli(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch, capsys: Any, database: Path, *extra: str
) -> tuple[int, str, str]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.url)  # botocore's own endpoint setting
    code = main(["spend", "reconcile", "--month", "2026-11", "--db", str(database), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_ledger_and_the_bill_per_pool_tag_with_drift_and_what_explains_it(
    moto, monkeypatch, capsys, tmp_path
):
    database = tmp_path / "controller.db"
    write_november(database)
    # Ledger: burst pools 10 h × ($0.40 + $1.00) = $14.00; the bill says $16.10 for burst.
    moto.queue_cost_and_usage(bill(burst=16.10, shared=2.5, untagged=0.75))
    code, out, err = reconcile_cli(moto, monkeypatch, capsys, database)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("ledger vs AWS bill for 2026-11")
    (burst,) = [line for line in lines if line.startswith("burst ")]
    assert "burst_ondemand, burst_spot" in burst
    assert "14.00" in burst and "16.10" in burst and "-13.0%" in burst
    assert "EBS, NAT, data transfer" in burst
    assert f"  burst: {EXPLAIN_BILL_HIGHER}" in lines
    (untagged,) = [line for line in lines if line.startswith("(untagged)")]
    assert "0.75" in untagged and "untagged resources" in untagged
    assert f"  (untagged): {EXPLAIN_UNTAGGED}" in lines
    assert any(line.startswith("shared") and "2.50" in line for line in lines)
    assert not any(line.startswith("private") for line in lines), "owned GPUs are not billed"


def test_drift_above_max_drift_exits_non_zero_and_names_the_pool(
    moto, monkeypatch, capsys, tmp_path
):
    database = tmp_path / "controller.db"
    write_november(database)
    moto.queue_cost_and_usage(bill(burst=16.10))
    code, _, err = reconcile_cli(moto, monkeypatch, capsys, database, "--max-drift", "10")
    assert code == 1
    assert "burst drifts -13.0% (above --max-drift 10%)" in err


def test_drift_within_max_drift_exits_zero(moto, monkeypatch, capsys, tmp_path):
    database = tmp_path / "controller.db"
    write_november(database)
    moto.queue_cost_and_usage(bill(burst=14.50))
    code, out, err = reconcile_cli(moto, monkeypatch, capsys, database, "--max-drift", "5")
    assert code == 0, err
    assert "-3.4%" in out


def test_reconcile_as_json_reads_the_same_lines(moto, monkeypatch, capsys, tmp_path):
    import json

    database = tmp_path / "controller.db"
    write_november(database)
    moto.queue_cost_and_usage(bill(burst=14.0))
    code, out, _ = reconcile_cli(moto, monkeypatch, capsys, database, "--format", "json")
    assert code == 0
    document = json.loads(out)
    assert document["month"] == "2026-11" and document["bill_estimated"] is False
    (line,) = document["lines"]
    assert (line["tag"], line["ledger_usd"], line["bill_usd"]) == ("burst", 14.0, 14.0)
    assert line["drift_percent"] == 0.0


def test_a_pool_named_as_a_tag_on_the_bill_is_compared_on_its_own() -> None:
    class Row:
        def __init__(self, pool: str, role: str, usd: float) -> None:
            self.pool, self.role, self.usd = pool, role, usd

    rows = [Row("gpu_a", "burst", 5.0), Row("gpu_b", "burst", 3.0), Row("private", "private", 9)]
    lines = reconcile(rows, {"gpu_a": 5.0, "burst": 4.0, "": 1.0})
    assert [(x.tag, x.pools, x.ledger_usd, x.bill_usd) for x in lines] == [
        ("burst", ("gpu_b",), 3.0, 4.0),
        ("gpu_a", ("gpu_a",), 5.0, 5.0),
        ("", (), None, 1.0),
    ]
    assert lines[0].explanation == EXPLAIN_BILL_HIGHER
    assert lines[2].explanation == EXPLAIN_UNTAGGED


@pytest.mark.parametrize("text", ["2026-13", "Nov 2026", "2026-1"])
def test_a_bad_month_is_named(text: str) -> None:
    with pytest.raises(SpilloverError, match="--month must be YYYY-MM"):
        Month.parse(text)


def test_december_runs_into_the_next_year() -> None:
    month = Month.parse("2026-12")
    assert (month.first_day.isoformat(), month.next_first_day.isoformat()) == (
        "2026-12-01",
        "2027-01-01",
    )
    assert Month.parse("2026-11").start_s == NOV_1
