"""`spillover sim` from the command line: a short run writes the drills' kind of report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spillover.cli import main


def test_a_short_run_writes_its_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "sim",
            "--days",
            "0.02",
            "--peak-rps",
            "30000",
            "--runs",
            "spillover,private only,reactive (HPA)",
            "--reports-dir",
            str(tmp_path),
        ]
    )
    assert code == 0
    (directory,) = tmp_path.iterdir()
    markdown = (directory / "report.md").read_text()
    assert markdown.startswith("# Fleet simulation: ")
    assert "| spillover |" in markdown and "| lower bound (perfect foresight) |" in markdown
    document = json.loads((directory / "report.json").read_text())
    assert [run["name"] for run in document["runs"]] == [
        "spillover",
        "private only",
        "reactive (HPA)",
    ]
    ours = document["runs"][0]
    assert ours["total_usd"] == pytest.approx(sum(ours["by_pool"].values()))
    assert len(ours["series_per_minute"]["demand_rps"]) == int(0.02 * 86400) // 60
    for png in ("capacity.png", "cost.png", "latency.png"):
        assert (directory / png).stat().st_size > 10_000
    assert (directory / "spillover.db").exists()  # the run's own ledger, for `spillover spend`
    assert "report:" in capsys.readouterr().out


def test_an_unknown_run_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--runs", "spillover,oracle", "--reports-dir", str(tmp_path)]) == 1
    assert "--runs: unknown run 'oracle'" in capsys.readouterr().err


def test_a_bad_replay_line_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "peak.csv"
    trace.write_text("second,rps\n0,100\n1,-5\n")
    assert main(["sim", "--replay", str(trace), "--reports-dir", str(tmp_path)]) == 1
    assert "peak.csv:3: rps must be a finite number >= 0" in capsys.readouterr().err


def test_plan_names_the_cheapest_fleet_that_meets_the_slo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "step.csv"
    trace.write_text("second,rps\n0,200\n300,20000\n900,20000\n")
    reports = tmp_path / "reports"
    code = main(
        [
            "plan",
            "--replay",
            str(trace),
            "--owned",
            "1,120",
            "--warm-floor",
            "0",
            "--no-plots",
            "--reports-dir",
            str(reports),
        ]
    )
    assert code == 0
    (directory,) = reports.iterdir()
    document = json.loads((directory / "report.json").read_text())
    one, owned = document["points"]
    # One owned GPU leaves the step to burst replicas that take minutes to start;
    # 120 carry it. The plan names 120 and says when owning pays.
    assert not one["meets_slo"] and owned["meets_slo"]
    markdown = (directory / "report.md").read_text()
    assert markdown.startswith("# Capacity plan: own 120 GPUs, keep 0 burst replicas warm")
    assert document["break_even_utilization"]["ondemand"] == pytest.approx(0.431 / 1.006, rel=0.01)
    assert "report:" in capsys.readouterr().out
