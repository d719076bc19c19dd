"""The controller on a real local stack: load above private capacity brings burst
replicas up and gives them traffic; when load drops, burst returns to standby after
the cooldown; the ledger shows what both pools cost; no request fails meanwhile."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from spillover.drivers.haproxy import HTTP_BACKEND, RuntimeApi
from spillover.drivers.local.state import RunDir
from spillover.local.stack import LocalStack
from tests.support import PacedLoad, free_port_base

# Configured far below what a CPU replica serves, so a gentle load is "above private
# capacity" on any machine and the test measures the controller, not the CPU. Replicas
# are held to it: a lone request takes 25 ms, so the queue-time target sits above that
# (at the default 10 ms one request waiting behind another reads as saturation, and
# burst would never return to standby).
CAPACITY_RPS = 40
QUEUE_TIME_TARGET_MS = 60
CONFIG = {
    "pools": [
        {
            "name": "private",
            "role": "private",
            "capacity_type": "owned",
            "min_replicas": 1,
            "max_replicas": 1,
            "capacity_rps": CAPACITY_RPS,
            "cold_start_seconds": 6,
            "price": {"usd_per_replica_hour": 1.2, "source": "test: amortized"},
        },
        {
            "name": "burst",
            "role": "burst",
            "capacity_type": "spot",
            "min_replicas": 0,
            "max_replicas": 2,
            "capacity_rps": CAPACITY_RPS,
            "cold_start_seconds": 6,
            "price": {"usd_per_replica_hour": 0.45, "source": "test: spot"},
        },
    ],
    "policy": {"tick_seconds": 0.5, "scale_down_cooldown_seconds": 6, "stale_after_seconds": 5},
    "slo": {"queue_time_ms": QUEUE_TIME_TARGET_MS},
    "controller": {"metrics_port": 0},
}


def spillover(run_dir: Path, *args: str, timeout: float = 60) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "spillover", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=run_dir.parent,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def controlled_stack(tmp_path: Path, model_repo: Path) -> Iterator[tuple[Path, int]]:
    run_dir = tmp_path / "run"
    config = tmp_path / "spillover.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    port_base = free_port_base()
    try:
        spillover(
            run_dir,
            "local", "--run-dir", str(run_dir), "up", "--config", str(config),
            "--port-base", str(port_base), "--model-repo", str(model_repo),
            timeout=240,
        )  # fmt: skip
        yield run_dir, port_base
    finally:
        LocalStack(run_dir).down()


def burst_sessions(run_dir: Path) -> int:
    stats = RuntimeApi(RunDir(run_dir).gateway_socket).server_stats()
    return sum(
        row.total_sessions for row in stats if row.backend == HTTP_BACKEND and row.pool == "burst"
    )


def status(run_dir: Path) -> dict:
    return json.loads(spillover(run_dir, "status", "--run-dir", str(run_dir), "--format", "json"))


def burst_pool(run_dir: Path) -> dict:
    try:
        return next(p for p in status(run_dir)["pools"] if p["pool"] == "burst")
    except AssertionError:  # no tick recorded yet
        return {}


def test_burst_joins_under_load_and_leaves_after_it(controlled_stack):
    run_dir, port_base = controlled_stack
    load = PacedLoad(f"127.0.0.1:{port_base}")

    # 2.5 x private's capacity: burst must start, become ready and take traffic.
    served_by_burst = load.run(
        rate=2.5 * CAPACITY_RPS, until=lambda: burst_sessions(run_dir) > 50, max_seconds=60
    )
    assert served_by_burst, f"burst never served: {burst_pool(run_dir)}"
    during = status(run_dir)
    assert during["mode"] == "burst"
    assert [p["desired"] for p in during["pools"] if p["pool"] == "burst"] != [0]

    # A trickle the private pool covers: burst drains and stops after the cooldown.
    back_to_standby = load.run(
        rate=5, until=lambda: burst_pool(run_dir).get("status") == "standby", max_seconds=60
    )
    assert back_to_standby, f"burst still running: {burst_pool(run_dir)}"
    assert load.failed == 0, f"{load.failed} of {load.sent} failed: {load.errors[:3]}"

    spend = {
        row["pool"]: row
        for row in json.loads(
            spillover(run_dir, "spend", "--run-dir", str(run_dir), "--format", "json")
        )
    }
    assert spend["private"]["usd"] > 0 and spend["burst"]["usd"] > 0
    assert spend["burst"]["requests"] > 0
    text = spillover(run_dir, "status", "--run-dir", str(run_dir), "--decisions", "50")
    assert re.search(r"scale burst to [12]: overflow \d+ rps", text), text
    assert "scale burst to 0: no demand left for burst" in text
    assert "standby" in text
