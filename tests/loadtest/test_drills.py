"""Each drill end to end, cut short, through the `spillover drill` command: a real
local stack (Triton, HAProxy, the controller), real load, and its verdict; then its
control run on another stack, the mechanism off, which must fail what it guards."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import free_port_base

pytestmark = pytest.mark.e2e  # each drill brings up a real stack of its own

SHORT = Path(__file__).parent / "drills-short.yaml"


def drill(name: str, tmp_path: Path, model_repo: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run one drill and its control; return both reports after checking the files exist,
    the verdict passed (the control failed what it must) and the exit code says so."""
    reports = tmp_path / "reports"
    result = subprocess.run(
        [
            sys.executable, "-m", "spillover", "drill", name,
            "--config", str(SHORT),
            "--reports-dir", str(reports),
            "--run-dir", str(tmp_path / "run"),
            "--port-base", str(free_port_base(slots=6)),
            "--model-repo", str(model_repo),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    directories = list(reports.glob(f"{name}-*"))
    assert len(directories) == 1, result.stdout + result.stderr
    files = {path.name for path in directories[0].iterdir()}
    assert {"report.json", "report.md", "timeline.png", "control-timeline.png"} <= files
    report = json.loads((directories[0] / "report.json").read_text())
    failing = [check for check in report["checks"] if not check["passed"]]
    assert result.returncode == (1 if failing else 0 if report["verdict"] == "pass" else 4), (
        result.stderr
    )
    assert report["verdict"] == "pass", (
        f"{failing}\n{report['control_misses']}\n{result.stdout}\n{result.stderr}"
    )
    control = report["control"]
    assert control["verdict"] == "fail" and report["control_misses"] == []
    for name in report["control_must_fail"]:
        assert check(control, name)["value"] is not None and not check(control, name)["passed"]
    return report, control


def check(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(check for check in report["checks"] if check["name"] == name)


def test_failover_loses_no_request_and_recovers_within_its_threshold(tmp_path, model_repo):
    report, control = drill("failover", tmp_path, model_repo)
    figures = report["figures"]
    assert figures["requests_failed"] == 0
    assert figures["private_replicas_killed"] >= 2
    recovery = check(report, "p99 back under the SLO after t0")
    assert recovery["value"] <= recovery["threshold"] == 2.0
    assert figures["gateway_marked_private_down_s"] is not None
    assert figures["controller_failover_s"] <= 2.0
    assert figures["failback_s"] is not None  # traffic went back to private
    assert any(event["label"].startswith("t0") for event in report["events"])
    # Without the warm reserve, requests fail until a burst replica has cold-started.
    assert control["figures"]["burst_up_at_t0"] == 0
    assert control["figures"]["failed_after_t0"] > 0


def test_flash_sale_bursts_within_a_tick_and_keeps_the_slo(tmp_path, model_repo):
    report, control = drill("burst", tmp_path, model_repo)
    figures = report["figures"]
    assert figures["burst_decision_ticks"] <= 1
    assert figures["spike_within_slo_share"] >= 0.99
    assert figures["spike_spend_burst_usd"] > 0  # burst ran, and the ledger charged it
    assert figures["requests_failed"] == 0
    # Without burst, private alone cannot keep the SLO through the spike.
    assert control["figures"]["burst_decision"] is None
    assert control["figures"]["spike_within_slo_share"] < 0.99


def test_spot_interruption_drains_before_the_reclaim_and_replaces(tmp_path, model_repo):
    report, control = drill("spot-interruption", tmp_path, model_repo)
    figures = report["figures"]
    assert figures["gateway_state_at_reclaim"] in ("DRAIN", "MAINT", "STOPPED")
    assert figures["in_flight_at_reclaim"] == 0
    assert figures["replacement_margin_s"] >= 0
    assert figures["requests_failed"] == 0
    # Without draining, the replica is still serving when it is killed.
    assert control["figures"]["gateway_state_at_reclaim"] == "UP"
    assert control["figures"]["served_after_it_should_have_left_rotation"] > 0


def test_metrics_outage_holds_in_safe_mode_and_recovers(tmp_path, model_repo):
    assert shutil.which("iptables"), "iptables is missing: scripts/install-system-deps.sh"
    report, control = drill("metrics-outage", tmp_path, model_repo)
    figures = report["figures"]
    assert figures["burst_replicas_at_t0"] >= 1
    assert figures["scale_downs_while_blind"] == 0
    assert figures["safe_mode_after_s"] <= 4.0
    assert figures["resumed_after_s"] <= 4.0
    assert figures["requests_failed"] == 0
    # Without safe mode, the controller shrinks burst while it cannot see it.
    assert control["figures"]["safe_mode_after_s"] is None
    assert control["figures"]["scale_downs_while_blind"] >= 1
