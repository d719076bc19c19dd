"""`spillover load`: flags to traces, clear errors before any load, and a run end to end
against a real local stack that writes a report whose verdict is the exit code."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from loadtest import load_cli
from loadtest.traces import TraceError
from spillover.local.stack import LocalStack


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
    assert "verdict: pass" in out


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
    assert "verdict: fail" in capsys.readouterr().out
