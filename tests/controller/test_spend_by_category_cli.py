"""`spillover spend --by category` prints the bill of quantities from a real ledger file;
a bad `costs` section is refused at start with its key named, before anything is written;
Prometheus gets the spend per pool and category."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from spillover.cli import main
from spillover.config import ConfigError, parse_config
from spillover.config_cli import LOCAL_DEFAULT
from spillover.controller.cli import _spend_by_category
from spillover.controller.exporter import Exporter
from spillover.controller.ledger import Ledger
from tests.controller.test_ledger_categories import document, flat_hour


def write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "spillover.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def spend(capsys: pytest.CaptureFixture[str], database: Path, fmt: str) -> str:
    config = write(database.parent, document())
    argv = ["spend", "--by", "category", "--since", "1970-01-01", "--format", fmt]
    code = main([*argv, "--config", str(config), "--db", str(database)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    flat_hour(path, parse_config(document())).close()
    return path


def test_the_table_is_the_bill_per_pool_then_totals_per_1k_and_used_vs_idle(
    database: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = spend(capsys, database, "table")
    bill, per_1k, use = out.split("\n\n")
    header, rule, *rows = bill.splitlines()
    assert header.split() == ["pool", "category", "quantity", "unit", "unit", "price", "$"] + [
        "amount",
        "$",
        "source",
    ]
    compute = next(row for row in rows if row.startswith("burst") and " compute " in row)
    assert compute.split()[:6] == ["burst", "compute", "3", "replica-h", "2", "6.0000"]
    assert compute.endswith("spot list")
    network = [row for row in rows if " network " in row]
    assert any("the gateway does not count bytes" in row for row in network)
    assert [row.split()[:2] for row in rows if "(all)" in row] == [
        ["burst", "(all)"],
        ["private", "(all)"],
        ["total", "(all)"],
    ]
    totals = {row.split()[1]: row.split()[2] for row in rows if row.startswith("total ")}
    assert totals["compute"] == "8.2000"
    assert list(totals) == ["compute", "storage", "network", "labour", "operations", "(all)"]

    per_1k_rows = {line.split()[0]: line.split() for line in per_1k.splitlines()[2:]}
    assert per_1k_rows["private"][1:3] == ["0", "-"]
    assert per_1k_rows["total"][1] == "360,000"
    assert float(per_1k_rows["total"][2]) == pytest.approx(8.2 / 360, abs=1e-4)

    use_rows = {line.split()[0]: line.split() for line in use.splitlines()[2:]}
    assert use_rows["burst"][1:] == ["1.5000", "4.5000", "0.0000", "25%"]
    assert use_rows["private"][1:] == ["0.0000", "0.0000", "2.2000", "-"]


def test_json_and_csv_carry_the_same_lines(
    database: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = json.loads(spend(capsys, database, "json"))
    rows = list(csv.DictReader(io.StringIO(spend(capsys, database, "csv"))))

    assert len(record["lines"]) == len(rows) == 13
    assert record["requests"] == 360_000
    burst_compute = next(
        line for line in record["lines"] if (line["pool"], line["category"]) == ("burst", "compute")
    )
    assert burst_compute == {
        "pool": "burst",
        "role": "burst",
        "category": "compute",
        "quantity": 3.0,
        "unit": "replica-h",
        "unit_price": 2.0,
        "source": "spot list",
        "usd": 6.0,
    }
    assert sum(float(row["usd"]) for row in rows) == pytest.approx(record["usd"])
    pools = {pool["pool"]: pool for pool in record["pools"]}
    assert pools["burst"]["compute_idle_usd"] == pytest.approx(4.5)


def test_prometheus_gets_spend_per_pool_and_category(database: Path) -> None:
    config = parse_config(document())
    exporter = Exporter(config, spend=lambda: _spend_by_category(database))
    text = generate_latest(exporter.registry).decode()
    samples = {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "spillover_spend_usd_total"
    }
    assert samples[(("category", "compute"), ("pool", "burst"))] == pytest.approx(6.0)
    assert samples[(("category", "labour"), ("pool", "burst"))] == pytest.approx(7.5)
    assert len(samples) == 9  # 5 categories of burst, private without network
    assert "# TYPE spillover_spend_usd_total counter" in text


def bad(**changes: Any) -> dict[str, Any]:
    doc = document()
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        target: Any = doc["costs"]
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[leaf] = value
    return doc


@pytest.mark.parametrize(
    ("doc", "named"),
    [
        (
            bad(labour__0__pools={"private": 1, "brust": 1}),
            "costs.labour[0].pools names no pool: brust",
        ),
        (bad(labour__0__pools={}), "costs.labour[0]: pools is empty"),
        (bad(labour__0__pools={"burst": 0}), "pools weights must be > 0: burst"),
        (bad(operations__0__usd_per_hour=-5), "costs.operations[0].usd_per_hour"),
        (bad(storage__bucket__usd_per_gb_month=-0.1), "costs.storage.bucket.usd_per_gb_month"),
        (bad(storage__per_replica__source=""), "costs.storage.per_replica.source"),
        (bad(network__response_bytes=0), "costs.network.response_bytes"),
        (bad(network__usd_per_gbyte=0.1), "costs.network.usd_per_gbyte: unknown key"),
        (
            bad(operations=[document()["costs"]["operations"][0]] * 2),
            "costs.operations: names repeated: support",
        ),
    ],
    ids=[
        "share-of-unknown-pool",
        "empty-shares",
        "zero-weight",
        "negative-rate",
        "negative-storage-price",
        "no-source",
        "zero-response-bytes",
        "typo",
        "item-twice",
    ],
)
def test_a_bad_costs_section_is_named(doc: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(doc)
    assert named in str(refused.value)


def test_the_controller_refuses_a_bad_costs_section_before_writing_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = bad(labour__0__pools={"brust": 1})
    database = tmp_path / "ledger.db"
    doc["controller"] = {"database": str(database), "metrics_port": 0}
    config = write(tmp_path, doc)

    code = main(["controller", "run", "--config", str(config), "--run-dir", str(tmp_path)])

    assert code == 1
    assert "costs.labour[0].pools names no pool: brust" in capsys.readouterr().err
    assert not database.exists()


def test_the_readmes_costs_sample_is_a_valid_costs_section() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("### Spend by category", 1)[1]
    sample = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    doc = yaml.safe_load(LOCAL_DEFAULT.read_text())
    doc["costs"] = yaml.safe_load(sample)["costs"]
    config = parse_config(doc)
    assert config.costs.storage is not None and config.costs.labour[0].pools == {"burst": 1}


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_an_empty_ledger_prints_an_empty_bill(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    database = tmp_path / "ledger.db"
    Ledger(database).close()
    out = spend(capsys, database, fmt)
    if fmt == "table":
        assert out.splitlines()[2].split() == ["total", "(all)", "0.0000"]
    elif fmt == "json":
        assert json.loads(out)["lines"] == []
    else:
        assert out.splitlines() == [",".join(("pool", "role", "category", "quantity", "unit",
                                              "unit_price", "source", "usd"))]  # fmt: skip
