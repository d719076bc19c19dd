"""`spillover load`: flags to traces, clear errors before any load, and a run end to end
against a real local stack that writes a report whose verdict is the exit code."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import threading
from pathlib import Path

import pytest

from loadtest import load_cli
from loadtest.traces import TraceError, arrivals, constant, draw_arrivals
from spillover.local.stack import LocalStack
from tests.loadtest.conftest import FakeTriton


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="spillover")
    load_cli.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["load", *argv])


def test_flags_describe_each_trace() -> None:
    assert load_cli.build_trace(_parse()).points == ((0, 100), (30, 100))
    assert load_cli.build_trace(_parse("--trace", "ramp", "--rps", "10")).points == (
        (0, 10),
        (30, 40),
    )
    day = load_cli.build_trace(_parse("--trace", "diurnal", "--rps", "50", "--duration", "240"))
    assert day.peak_rps == pytest.approx(250)
    assert min(rps for _, rps in day.points) == pytest.approx(50)  # --rps is the night trough
    sale = load_cli.build_trace(_parse("--trace", "flash-sale", "--rps", "40", "--start", "5"))
    assert sale.rate_at(4) == 40 and sale.peak_rps == 400  # x10 by default
    assert sale.rate_at(7) == 400


def test_replay_reads_the_csv_and_duration_cuts_it(tmp_path: Path) -> None:
    csv = tmp_path / "sale.csv"
    csv.write_text("seconds,rps\n0,10\n60,70\n")
    assert load_cli.build_trace(_parse("--trace", "replay", "--csv", str(csv))).duration_s == 60
    cut = load_cli.build_trace(_parse("--trace", "replay", "--csv", str(csv), "--duration", "30"))
    assert cut.points == ((0, 10), (30, 40))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--csv", "x.csv"], "--csv goes with --trace replay"),
        (["--trace", "replay"], "--trace replay needs --csv"),
        (["--start", "3"], "--start goes with --trace flash-sale"),
        (["--peak-rps", "300"], "--peak-rps does not apply to --trace constant"),
        (["--trace", "flash-sale", "--start", "30"], "--start (30 s) must be before the end"),
        (["--trace", "diurnal", "--rps", "100", "--peak-rps", "50"], "at least --rps"),
    ],
)
def test_flags_that_do_not_fit_the_trace_are_refused(argv: list[str], message: str) -> None:
    with pytest.raises(TraceError) as error:
        load_cli.build_trace(_parse(*argv))
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rps", "-5"], "argument --rps: must be 0 or more, got -5"),
        (["--duration", "0"], "argument --duration: must be above 0, got 0"),
        (["--max-requests", "0"], "argument --max-requests: must be 1 or more"),
    ],
)
def test_bad_numbers_are_refused_naming_the_flag(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        _parse(*argv)
    assert message in capsys.readouterr().err


def test_without_a_stack_or_url_it_says_how_to_get_one(tmp_path: Path) -> None:
    args = _parse("--run-dir", str(tmp_path / "none"), "--reports-dir", str(tmp_path))
    with pytest.raises(load_cli.LoadError, match="no local stack in .*spillover local up"):
        args.func(args)


def test_a_url_where_nothing_listens_is_refused_before_any_load(tmp_path: Path) -> None:
    args = _parse("--url", "127.0.0.1:1", "--reports-dir", str(tmp_path))
    with pytest.raises(load_cli.LoadError, match=r"nothing answers on 127\.0\.0\.1:1 \(grpc\)"):
        args.func(args)
    assert not list(tmp_path.iterdir())


def test_a_plan_too_large_to_keep_is_refused_naming_the_flags_that_fit_it(
    tmp_path: Path,
) -> None:
    args = _parse(*("--url", "127.0.0.1:1", "--rps", "10000", "--duration", "3000"))
    with pytest.raises(load_cli.LoadError, match="plans about 30000000 requests") as error:
        args.func(args)
    assert str(error.value).endswith("(--max-requests N, --time-limit S)")


def _load(stack: LocalStack, model_repo: Path, reports: Path, *argv: str) -> tuple[int, dict]:
    args = _parse(
        "--run-dir",
        str(stack.run_dir.path),
        "--model-repo",
        str(model_repo),
        "--reports-dir",
        str(reports),
        *argv,
    )
    code = args.func(args)
    (directory,) = reports.iterdir()
    assert {path.name for path in directory.iterdir()} == {
        "report.json",
        "report.md",
        "timeline.png",
    }
    return code, json.loads((directory / "report.json").read_text())


def test_a_run_through_the_local_gateway_writes_a_passing_report(
    local_stack: LocalStack,
    model_repo: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, report = _load(
        local_stack, model_repo, tmp_path, "--rps", "100", "--duration", "2", "--seed", "1"
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert report["kind"] == "load"
    assert {check["name"] for check in report["checks"]} == {
        "p99 latency",
        "failed requests",
        "schedule kept",
    }
    assert report["figures"]["failed"] == 0 and report["figures"]["sent"] > 150
    assert report["settings"]["url"] == local_stack.gateway_endpoints["grpc"]
    assert [row["t"] for row in report["timeline"]] == [0, 1]
    # The gateway was sampled: its two pools shared the traffic 1:1.
    assert all(
        row["share"] == pytest.approx({"private": 0.5, "burst": 0.5}, abs=0.15)
        for row in report["timeline"]
    )
    for header in ("sent", "achieved rps", "p99 ms", "schedule kept"):
        assert header in out
    assert "verdict: PASS; report in" in out


def test_a_missed_goal_fails_with_what_limits_it(
    local_stack: LocalStack,
    model_repo: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, report = _load(
        local_stack,
        model_repo,
        tmp_path,
        *("--rps", "50", "--duration", "1", "--slo-ms", "0.01"),
    )
    assert code == 1
    (latency,) = [check for check in report["checks"] if check["name"] == "p99 latency"]
    assert latency["limit"] and "slower than 0.01 ms" in latency["limit"]
    assert "verdict: FAIL; report in" in capsys.readouterr().out


# --- runs cut short say so (issue 19), against a stand-in replica ---------------------------


def _load_fake(
    fake: FakeTriton, model_repo: Path, tmp_path: Path, *argv: str
) -> tuple[int, dict, list[str]]:
    """`spillover load --url <fake> --protocol http ...`: exit code, report.json, and
    report.md's lines."""
    reports = tmp_path / "reports"
    args = _parse(
        *("--url", fake.url, "--protocol", "http", "--model-repo", str(model_repo)),
        *("--reports-dir", str(reports), "--run-dir", str(tmp_path / "no-stack"), "--seed", "3"),
        *argv,
    )
    code = args.func(args)
    (directory,) = reports.iterdir()
    report = json.loads((directory / "report.json").read_text())
    return code, report, (directory / "report.md").read_text().splitlines()


def _announced_plan(out: str) -> int:
    match = re.search(r"(\d+) requests planned", out)
    assert match, out
    return int(match[1])


def test_a_plan_beyond_a_small_cap_reports_the_partial_run(
    fake_triton: FakeTriton, model_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report, md = _load_fake(
        fake_triton, model_repo, tmp_path, "--rps", "100", "--duration", "4", "--max-requests", "50"
    )
    out = capsys.readouterr().out
    planned = _announced_plan(out)
    assert planned == len(arrivals(constant(100, 4), seed=3)) > 300
    assert code == 3, out
    coverage = report["coverage"]
    assert (coverage["bound"], coverage["limit"], coverage["offered"]) == ("max_requests", 50, 50)
    assert coverage["planned"] == planned == report["figures"]["planned"]
    assert report["figures"]["sent"] == 50
    assert 0.4 < coverage["end_s"] < 0.65 and coverage["trace_s"] == 4
    assert report["verdict"] == "partial"
    share = math.floor(coverage["trace_share"] * 100)
    assert report["verdict_text"] == f"PASS (partial: {share}% of the trace)"
    summary = coverage["summary"]
    assert summary.startswith("cut short by the request cap (50 requests) at t = 0.")
    assert f"50 of {planned} planned requests" in summary
    assert md[0].endswith(f"— {report['verdict_text']}: {summary}")
    assert f"partial run: {summary}" in out
    assert f"verdict: {report['verdict_text']}; report in" in out
    assert "--max-requests 50 ends the run before its trace does" in out
    assert any(event["label"] == "run cut short: the request cap" for event in report["events"])


def test_a_plan_within_the_cap_reports_complete(
    fake_triton: FakeTriton, model_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report, md = _load_fake(
        fake_triton,
        model_repo,
        tmp_path,
        "--rps",
        "100",
        "--duration",
        "1",
        "--max-requests",
        "500",
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert report["verdict"] == "pass" and report["verdict_text"] == "PASS"
    assert report["coverage"]["complete"] is True and report["coverage"]["bound"] is None
    assert report["figures"]["sent"] == report["figures"]["planned"] == _announced_plan(out)
    assert md[0].endswith(" — PASS")
    assert "partial" not in out and "verdict: PASS; report in" in out


def test_a_time_limit_before_the_trace_ends_is_named(
    fake_triton: FakeTriton, model_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report, md = _load_fake(
        fake_triton, model_repo, tmp_path, "--rps", "40", "--duration", "60", "--time-limit", "1"
    )
    assert code == 3
    coverage = report["coverage"]
    assert (coverage["bound"], coverage["limit"], coverage["end_s"]) == ("time_limit", 1, 1)
    assert report["verdict_text"] == "PASS (partial: 1% of the trace)"
    assert "cut short by the time limit (1 s) at t = 1.0 s" in md[0]
    assert report["settings"]["time_limit_s"] == 1


def test_ctrl_c_ends_the_load_and_the_report_says_when(
    fake_triton: FakeTriton, model_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    interrupt = threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGINT))
    interrupt.start()
    try:
        code, report, md = _load_fake(
            fake_triton, model_repo, tmp_path, "--rps", "40", "--duration", "60"
        )
    finally:
        interrupt.cancel()
    assert code == 3
    coverage = report["coverage"]
    assert coverage["bound"] == "stop" and 0.5 < coverage["end_s"] < 1.6
    share = math.floor(coverage["end_s"] / 60 * 100)
    assert report["verdict_text"] == f"PASS (partial: {share}% of the trace)"
    assert "cut short by Ctrl-C at t = 1." in md[0]
    assert "partial run: cut short by Ctrl-C" in capsys.readouterr().out


def test_by_default_no_cap_cuts_issue_19s_diurnal_day() -> None:
    """The day issue 19 ran: 402412 requests planned over 1800 s, cut 793 s in by the old
    default --max-requests of 100000. The run now keeps, and sends, its whole plan."""
    args = _parse("--trace", "diurnal", "--rps", "40", "--peak-rps", "400", "--duration", "1800")
    plan = draw_arrivals(load_cli.build_trace(args), args.seed, args.max_requests)
    assert plan.total > 400_000
    assert len(plan.offsets) == plan.total


def test_the_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parse("--help")
    text = " ".join(capsys.readouterr().out.split())
    assert "exit status: 0 every check passed over the whole trace; 1 a check failed" in text
    assert "3 every check passed, but a bound (request cap, time limit, Ctrl-C)" in text
    assert "--max-requests" in text and "default: the trace's whole plan" in text
