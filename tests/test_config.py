"""spillover.yaml: bad settings name their key and reason; good ones load as written."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import yaml

from spillover.config import (
    ConfigError,
    dump_config,
    json_schema,
    load_config,
    parse_config,
)
from spillover.config_cli import LOCAL_DEFAULT

GOOD = {
    "pools": [
        {
            "name": "private",
            "role": "private",
            "capacity_type": "owned",
            "min_replicas": 2,
            "max_replicas": 2,
            "price": {
                "amortized": {
                    "purchase_usd_per_gpu": 8760,
                    "lifetime_years": 1,
                    "power_kw_per_gpu": 1,
                    "usd_per_kwh": 0.1,
                    "labour_usd_per_gpu_hour": 0.2,
                },
                "source": "test",
            },
        },
        {
            "name": "burst",
            "role": "burst",
            "capacity_type": "spot",
            "max_replicas": 4,
            "price": {"usd_per_replica_hour": 0.5, "source": "test"},
        },
    ]
}


def with_change(path: str, value: object) -> dict:
    document = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node: object = document
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    node[last] = value  # type: ignore[index]
    return document


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        pytest.param(
            "pools.1.max_replicas",
            -1,
            "pools[1].max_replicas: Input should be greater",
            id="negative-max",
        ),
        pytest.param(
            "pools.0.max_replicas",
            1,
            "pools[0]: max_replicas (1) is below min_replicas (2)",
            id="max-below-min",
        ),
        pytest.param(
            "pools.1.role",
            "cloud",
            "pools[1].role: Input should be 'private' or 'burst'",
            id="unknown-role",
        ),
        pytest.param(
            "pools.1.capacity_type", "owned", "does not fit role 'burst'", id="burst-pool-owned"
        ),
        pytest.param(
            "pools.1.name",
            "Burst Pool",
            "pools[1].name: String should match pattern",
            id="bad-pool-name",
        ),
        pytest.param(
            "pools.1.price",
            {"source": "x"},
            "give exactly one of usd_per_replica_hour and amortized",
            id="no-price",
        ),
        pytest.param("pools.1.repliacs", 3, "pools[1].repliacs: unknown key (a typo?)", id="typo"),
        pytest.param(
            "pools.1.driver",
            "kubernetes",
            "driver 'kubernetes' needs a `kubernetes` section",
            id="kubernetes-without-target",
        ),
        pytest.param(
            "policy.target_utilization",
            1.5,
            "policy.target_utilization: Input should be less than or equal to 1",
            id="utilization-over-1",
        ),
        pytest.param(
            "budget.action", "panic", "budget.action: Input should be", id="unknown-budget-action"
        ),
        pytest.param(
            "pools.0.name",
            "burst",
            "pool names must be unique; repeated: burst",
            id="duplicate-name",
        ),
    ],
)
def test_bad_config_names_the_key_and_why(path, value, message):
    with pytest.raises(ConfigError) as error:
        parse_config(with_change(path, value), source="spillover.yaml")
    assert message in str(error.value)
    assert str(error.value).startswith("spillover.yaml is invalid:")


def test_amortized_price_is_compute_plus_power_plus_running_costs():
    config = parse_config(GOOD)
    # 8760 $ over one year is 1 $/h; 1 kW at 0.1 $/kWh; 0.2 $/h of labour.
    assert config.pool("private").price.hourly_usd == pytest.approx(1.3)


def test_forecast_horizon_defaults_to_the_longest_burst_cold_start_plus_a_tick():
    config = parse_config(with_change("pools.1.cold_start_seconds", 90))
    assert config.forecast_horizon_seconds == 90 + config.policy.tick_seconds


def test_dumped_config_loads_back_the_same(tmp_path):
    config = parse_config(GOOD)
    path = tmp_path / "spillover.yaml"
    path.write_text(dump_config(config))
    assert load_config(path) == config


def test_the_packaged_local_config_is_valid_and_the_schema_refuses_unknown_keys():
    config = load_config(LOCAL_DEFAULT)
    assert [pool.role for pool in config.pools] == ["private", "burst"]
    schema = json.loads(json_schema())
    assert schema["required"] == ["pools"]
    assert schema["additionalProperties"] is False  # a typo in any key is refused


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("pools: [", "is not valid YAML", id="broken-yaml"),
        pytest.param("pools: []", "pools: List should have at least 1 item", id="no-pools"),
        pytest.param(
            "pools:\n  - name: privé\n".encode("latin-1"),  # é is one byte there, 0xe9
            "is not UTF-8 text: byte 0xe9 at byte offset 21 (line 2, column 15)",
            id="not-utf8",
        ),
    ],
)
def test_config_check_command_reports_bad_files_without_a_traceback(tmp_path, text, message):
    path = tmp_path / "spillover.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    result = subprocess.run(
        [sys.executable, "-m", "spillover", "config", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert str(path) in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_utf8_file_with_a_byte_order_mark_loads(tmp_path):
    path = tmp_path / "spillover.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + dump_config(parse_config(GOOD)).encode())
    assert load_config(path) == parse_config(GOOD)


def run_config_check(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spillover", "config", "check", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_config_check_states_what_a_private_loss_costs_with_the_packaged_reserve():
    at_50 = run_config_check(str(LOCAL_DEFAULT), "--demand", "50")
    assert at_50.returncode == 0, at_50.stderr
    assert (
        "failover: at 50 rps on private, the warm burst replicas (200 rps) take it all: "
        "a private loss fails no request; a reserve of 1 warm burst replica(s) (1 burst) "
        "costs $0.45/h, $324/month; with failover.reserve_share 0 it would fail ~350"
    ) in at_50.stdout
    planned = run_config_check(str(LOCAL_DEFAULT))
    assert "at 210 rps on private" in planned.stdout  # 1 x 300 rps x 0.7
    assert "2 warm burst replica(s) (2 burst) costs $0.90/h, $648/month" in planned.stdout


def test_config_check_without_a_reserve_states_the_requests_a_loss_fails(tmp_path):
    document = yaml.safe_load(LOCAL_DEFAULT.read_text())
    document["failover"]["reserve_share"] = 0
    path = tmp_path / "spillover.yaml"
    path.write_text(yaml.safe_dump(document))
    result = run_config_check(str(path), "--demand", "105")
    # 105 rps x (a 1 s tick + the 6 s burst cold start)
    assert "a private loss fails ~735 requests over the 7 s" in result.stdout
    assert "no burst replica is kept warm ($0/h)" in result.stdout


def test_config_check_refuses_a_negative_demand():
    result = run_config_check(str(LOCAL_DEFAULT), "--demand", "-5")
    assert result.returncode == 2
    assert "--demand must be requests/s, 0 or more" in result.stderr


def test_config_check_says_when_the_budget_cannot_pay_for_the_reserve(tmp_path):
    document = yaml.safe_load(LOCAL_DEFAULT.read_text())
    document["budget"]["max_burst_usd_per_hour"] = 0.5
    path = tmp_path / "spillover.yaml"
    path.write_text(yaml.safe_dump(document))
    result = run_config_check(str(path))  # 2 warm replicas at $0.45/h
    assert "budget.max_burst_usd_per_hour ($0.5) is below that price" in result.stdout
