"""Spend by category: every line of the bill of quantities is quantity x unit price, each
one closed-form for a flat hour; a price change adds a row and never rewrites one; the
amortized private price is its categories' sum; used and idle follow the busy share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from spillover.config import SpilloverConfig, parse_config
from spillover.controller.ledger import Ledger, PoolUsage, category_rates
from spillover.controller.ledger.categories import HOURS_PER_MONTH

HOUR = 3600.0
TICK = 2.0
BURST_RPS = 100


def document() -> dict[str, Any]:
    """A private pool at $1/GPU-h compute with amortized shares, a $2/h burst pool, and
    every category the `costs` section has, in round numbers."""
    return {
        "pools": [
            {
                "name": "private",
                "role": "private",
                "capacity_type": "owned",
                "max_replicas": 4,
                "price": {
                    "amortized": {
                        "purchase_usd_per_gpu": 8760.0,  # over 1 year: $1 per GPU-hour
                        "lifetime_years": 1.0,
                        "power_kw_per_gpu": 0.5,
                        "usd_per_kwh": 0.2,  # + $0.10 per GPU-hour
                        "storage_usd_per_gpu_hour": 0.01,
                        "labour_usd_per_gpu_hour": 0.02,
                        "operations_usd_per_gpu_hour": 0.03,
                    },
                    "source": "finance sheet",
                },
            },
            {
                "name": "burst",
                "role": "burst",
                "capacity_type": "spot",
                "max_replicas": 4,
                "price": {"usd_per_replica_hour": 2.0, "source": "spot list"},
            },
        ],
        "policy": {"tick_seconds": TICK},
        "costs": {
            "storage": {
                "per_replica": {"gb": 2.0, "usd_per_gb_month": 0.1, "source": "EBS"},
                "bucket": {"gb": 3.0, "usd_per_gb_month": 0.05, "source": "S3"},
            },
            "network": {
                "usd_per_gb": 0.1,
                "source": "egress",
                "response_bytes": 1000,
                "metrics_bytes_per_scrape": 10_000,
            },
            "labour": [
                {
                    "name": "on-call",
                    "hours_per_month": 73.0,
                    "usd_per_hour": 100.0,
                    "source": "team plan",
                    "pools": {"private": 1, "burst": 3},
                }
            ],
            "operations": [
                {"name": "support", "hours_per_month": 146.0, "usd_per_hour": 50.0, "source": "x"}
            ],
        },
    }


def usages(
    config: SpilloverConfig, at: float, replicas: dict[str, int], busy: float | None = 0.25
) -> list[PoolUsage]:
    """Private unmeasured, burst busy a quarter of its time, 100 req/s to burst."""
    return [
        PoolUsage.of(
            config.pool(name),
            count,
            0 if name == "private" else int(at * BURST_RPS),
            0,
            busy_share=None if name == "private" else busy,
            rates=category_rates(config, config.pool(name)),
        )
        for name, count in replicas.items()
    ]


def flat_hour(database: Path, config: SpilloverConfig, window: int = 600) -> Ledger:
    """2 private and 3 burst replicas for one hour, ticking every 60 s."""
    ledger = Ledger(database, window_seconds=window)
    for at in range(0, 3601, 60):
        ledger.record(float(at), usages(config, float(at), {"private": 2, "burst": 3}))
    return ledger


def lines_of(ledger: Ledger) -> dict[tuple[str, str, str], tuple[float, str, float, float]]:
    """(pool, category, source) -> (quantity, unit, unit price, amount) over all time."""
    return {
        (line.pool, line.category, line.source): (
            line.quantity,
            line.unit,
            line.unit_price,
            line.usd,
        )
        for line in ledger.bill(-1e10, 1e10).lines
    }


def test_a_flat_hour_bills_every_category_in_closed_form(tmp_path: Path) -> None:
    config = parse_config(document())
    with flat_hour(tmp_path / "ledger.db", config) as ledger:
        bill = ledger.bill(-1e10, 1e10)
        got = lines_of(ledger)

    month = HOURS_PER_MONTH
    share = "share of the amortized price"
    expected = {
        ("private", "compute", "finance sheet"): (2.0, "replica-h", 1.1, 2.2),
        ("private", "storage", f"finance sheet (storage {share})"): (2.0, "replica-h", 0.01, 0.02),
        ("private", "labour", f"finance sheet (labour {share})"): (2.0, "replica-h", 0.02, 0.04),
        ("private", "operations", f"finance sheet (operations {share})"): (
            2.0,
            "replica-h",
            0.03,
            0.06,
        ),
        # 73 h a month, a quarter of it private's, for 1 of 730 hours.
        ("private", "labour", "on-call: team plan; 25% of 73 h/month"): (0.025, "h", 100.0, 2.5),
        ("private", "operations", "support: x; 50% of 146 h/month"): (0.1, "h", 50.0, 5.0),
        ("burst", "compute", "spot list"): (3.0, "replica-h", 2.0, 6.0),
        ("burst", "storage", "EBS; 2 GB of model per replica"): (
            2 * 3 / month,
            "GB-month",
            0.1,
            0.6 / month,
        ),
        ("burst", "storage", "S3; S3 model bucket 3 GB split over 1 burst pool(s)"): (
            3 / month,
            "GB-month",
            0.05,
            0.15 / month,
        ),
        # 360,000 responses of 1,000 B.
        (
            "burst",
            "network",
            "egress; estimated as requests x 1000 B per response (the gateway does not count "
            "bytes)",
        ): (0.36, "GB", 0.1, 0.036),
        # 3 replicas x 1,800 scrapes an hour x 10,000 B.
        (
            "burst",
            "network",
            "egress; estimated as 10000 B of /metrics per replica every 2 s tick",
        ): (
            0.054,
            "GB",
            0.1,
            0.0054,
        ),
        ("burst", "labour", "on-call: team plan; 75% of 73 h/month"): (0.075, "h", 100.0, 7.5),
        ("burst", "operations", "support: x; 50% of 146 h/month"): (0.1, "h", 50.0, 5.0),
    }
    assert got.keys() == expected.keys()
    for key, (quantity, unit, price, usd) in expected.items():
        assert got[key] == (pytest.approx(quantity), unit, pytest.approx(price), pytest.approx(usd))
        assert got[key][0] * got[key][2] == pytest.approx(got[key][3]), key

    # The amortized private price is still paid in full, now across its categories.
    hourly = config.pool("private").price.hourly_usd
    private_replica_costs = sum(
        usd
        for (pool, _, source), (*_, usd) in got.items()
        if pool == "private" and "finance" in source
    )
    assert private_replica_costs == pytest.approx(2 * hourly)

    # Per 1,000 requests: only burst served (360,000); private has none.
    assert bill.requests == 360_000
    assert bill.usd_per_1k_requests("compute") == pytest.approx(8.2 / 360)
    assert bill.usd_per_1k_requests("network", "burst") == pytest.approx(0.0414 / 360)
    assert bill.usd_per_1k_requests("compute", "private") is None

    # OpenCost's used vs idle: burst busy a quarter of its $6; private never measured.
    uses = {use.pool: use for use in bill.pools}
    assert (uses["burst"].used_usd, uses["burst"].idle_usd) == pytest.approx((1.5, 4.5))
    assert uses["burst"].unmeasured_usd == pytest.approx(0.0)
    assert uses["private"].unmeasured_usd == pytest.approx(2.2)
    assert uses["private"].used_usd == uses["private"].idle_usd == 0.0


def test_spend_counts_every_category_and_the_budget_what_burst_capacity_causes(
    tmp_path: Path,
) -> None:
    """`spend` is the bill's total; the month-to-date a burst cap reads is compute,
    storage and network, not the people's hours allocated to burst (a cap cannot save
    those, and they would spend it with no replica running)."""
    config = parse_config(document())
    with flat_hour(tmp_path / "ledger.db", config) as ledger:
        bill = ledger.bill(-1e10, 1e10)
        by_pool = {row.key: row.usd for row in ledger.spend(-1e10, 1e10, by="pool")}
        by_role = {row.key: row.usd for row in ledger.spend(-1e10, 1e10, by="role")}
        month_to_date = ledger.month_to_date_usd(3600.0, role="burst")

    burst = sum(line.usd for line in bill.lines if line.pool == "burst")
    assert by_pool["burst"] == pytest.approx(burst) == pytest.approx(by_role["burst"])
    assert by_pool["burst"] + by_pool["private"] == pytest.approx(bill.usd)
    caused = sum(bill.category_usd(c, "burst") for c in ("compute", "storage", "network"))
    assert month_to_date == pytest.approx(caused) == pytest.approx(burst - 7.5 - 5.0)
    assert caused > 6.0  # compute, then storage and network


def test_a_price_change_mid_window_adds_rows_and_rewrites_none(tmp_path: Path) -> None:
    """At 300 s of a 600 s window burst's spot price and the EBS price change: that window
    holds one row per price for both, and the rows charged before the change keep
    their values to the last digit."""
    before = parse_config(document())
    changed = document()
    changed["pools"][1]["price"] = {"usd_per_replica_hour": 3.0, "source": "spot, new"}
    changed["costs"]["storage"]["per_replica"]["usd_per_gb_month"] = 0.2
    after = parse_config(changed)
    replicas = {"burst": 3}
    with Ledger(tmp_path / "ledger.db", window_seconds=600) as ledger:
        for at in (0.0, 150.0):
            ledger.record(at, usages(before, at, replicas))
        ledger.record(300.0, usages(after, 300.0, replicas))  # in force from 300 s on
        early = {(row.category, row.unit_price): row for row in category_rows(ledger)}
        early_compute = ledger.windows(-1e10, 1e10)
        for at in (450.0, 600.0):
            ledger.record(at, usages(after, at, replicas))
        late = category_rows(ledger)
        compute = ledger.windows(-1e10, 1e10)

    assert [(row.window_start, row.usd_per_replica_hour) for row in compute] == [(0, 2.0), (0, 3.0)]
    assert compute[0] == early_compute[0]  # the first price's row, untouched
    assert compute[0].usd == pytest.approx(3 * 300 / HOUR * 2.0)
    assert compute[1].usd == pytest.approx(3 * 300 / HOUR * 3.0)
    storage = [row for row in late if row.category == "storage" and "EBS" in row.source]
    assert [row.unit_price for row in storage] == [0.1, 0.2]
    assert storage[0] == early[("storage", 0.1)]
    assert storage[0].quantity == storage[1].quantity == pytest.approx(2 * 3 * 300 / HOUR / 730)


def category_rows(ledger: Ledger) -> list[Any]:
    """The stored category rows, in key order (read like `windows`, straight from SQL)."""
    from spillover.controller.ledger.spend import CATEGORY_WINDOWS

    query = CATEGORY_WINDOWS.select(order_by="window_start, pool, category, unit_price, source")
    return [CATEGORY_WINDOWS.read(row) for row in ledger._file.db.execute(query)]


def test_a_pool_with_no_replicas_pays_only_what_runs_without_them(tmp_path: Path) -> None:
    """Burst at 0 replicas: no compute, no per-replica storage or metrics; the bucket and
    the people's hours still run."""
    config = parse_config(document())
    with Ledger(tmp_path / "ledger.db", window_seconds=600) as ledger:
        for at in (0.0, HOUR):
            ledger.record(at, usages(config, 0.0, {"burst": 0}))
        got = lines_of(ledger)
    billed = {
        (category, source.split(";")[0])
        for (_, category, source), line in got.items()
        if line[3] > 0
    }
    assert billed == {
        ("storage", "S3"),
        ("labour", "on-call: team plan"),
        ("operations", "support: x"),
    }


def test_a_config_without_costs_charges_as_before(tmp_path: Path) -> None:
    """No `costs` and no amortized shares: compute alone, at the configured price."""
    plain = document()
    del plain["costs"]
    plain["pools"][0]["price"]["amortized"] = {
        "purchase_usd_per_gpu": 8760.0,
        "lifetime_years": 1.0,
        "power_kw_per_gpu": 0.0,
        "usd_per_kwh": 0.0,
    }
    config = parse_config(plain)
    with flat_hour(tmp_path / "ledger.db", config) as ledger:
        categories = {line.category for line in ledger.bill(-1e10, 1e10).lines}
        usd = {row.key: row.usd for row in ledger.spend(-1e10, 1e10, by="pool")}
    assert categories == {"compute"}
    assert usd == pytest.approx({"private": 2.0, "burst": 6.0})


@pytest.mark.parametrize("share", [-0.1, 1.5, float("nan")], ids=["negative", "over-1", "nan"])
def test_a_busy_share_outside_0_to_1_is_refused(tmp_path: Path, share: float) -> None:
    config = parse_config(document())
    with Ledger(tmp_path / "ledger.db") as ledger, pytest.raises(ValueError, match="busy_share"):
        ledger.record(0.0, usages(config, 0.0, {"burst": 1}, busy=share))


def test_an_interval_across_windows_splits_time_and_credits_requests_to_the_last(
    tmp_path: Path,
) -> None:
    """[500, 700] over 600 s windows: per-replica and per-second quantities are split
    100 s / 100 s; the requests' network bytes go whole to the window they end in, where
    the compute rows put the requests."""
    config = parse_config(document())
    with Ledger(tmp_path / "ledger.db", window_seconds=600) as ledger:
        for at in (500.0, 700.0):
            ledger.record(at, usages(config, at, {"burst": 1}))
        rows = category_rows(ledger)
    by_source = {}
    for row in rows:
        by_source.setdefault(row.source.split(";")[1].strip()[:20], []).append(
            (row.window_start, row.quantity)
        )
    responses = by_source["estimated as request"]
    assert responses == [(600, pytest.approx(200 * BURST_RPS * 1000 / 1e9))]
    bucket = by_source["S3 model bucket 3 GB"]
    assert bucket == [
        (0, pytest.approx(3 * 100 / HOUR / 730)),
        (600, pytest.approx(3 * 100 / HOUR / 730)),
    ]
