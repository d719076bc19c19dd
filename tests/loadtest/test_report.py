"""Reports as an operator and a tool read them: the verdict follows the checks, failing
checks say what limits them, report.json reads back to the same report, and the PNG is
a real image whatever data the run could collect."""

from __future__ import annotations

import calendar
import json
import math
import struct
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from loadtest.report import (
    REPORT_JSON,
    REPORT_MD,
    TIMELINE_PNG,
    Check,
    Event,
    Report,
    worst,
)
from loadtest.report_files import read_report, write_report
from loadtest.results import Coverage
from loadtest.timeline import TimelineRow

STARTED_AT = float(calendar.timegm((2025, 3, 14, 15, 9, 26, 0, 0, 0)))
"""2025-03-14 15:09:26 UTC."""

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def rows(n: int = 30) -> list[TimelineRow]:
    timeline = []
    for t in range(n):
        failover = 10 <= t < 20
        timeline.append(
            TimelineRow(
                t=t,
                planned_rps=50.0,
                sent=50,
                ok=47 if t == 10 else 50,
                failed=3 if t == 10 else 0,
                p50_ms=8.0,
                p99_ms=900.0 if t == 10 else 30.0,
                share={"private": 0.0, "burst": 1.0}
                if failover
                else {"private": 0.99, "burst": 0.01},
                replicas={"private": 0 if failover else 2, "burst": 1},
                mode="failover" if failover else "normal",
            )
        )
    return timeline


def report(checks: list[Check] | None = None, **changes: object) -> Report:
    fields: dict[str, object] = {
        "kind": "failover",
        "title": "Failover drill",
        "started_at": STARTED_AT,
        "slo_p99_ms": 100.0,
        "checks": checks
        if checks is not None
        else [
            Check("failed requests", 0, 0, "<=", "requests"),
            Check("recovery", 1.4, 5.0, "<=", "s"),
        ],
        "figures": {"detection_s": 0.61, "failed_requests": 0, "cold_start": "warm"},
        "timeline": rows(),
        "events": [Event(10.0, "t0: private killed"), Event(10.6, "private-0 DOWN")],
        "notes": ["Client CPU 30% of one core."],
        "settings": {"rps": 50, "protocol": "http", "pools": ["private", "burst"]},
    }
    fields.update(changes)
    return Report(**fields)  # type: ignore[arg-type]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# --- checks and verdict ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "op", "passed"),
    [
        (1.0, "<=", True),
        (2.0, "<=", True),
        (2.1, "<=", False),
        (3.0, ">=", True),
        (1.9, ">=", False),
        (None, "<=", False),
        (math.nan, ">=", False),
    ],
)
def test_a_check_passes_only_with_a_value_on_the_right_side(
    value: float | None, op: str, passed: bool
) -> None:
    threshold = 2.0
    assert Check("c", value, threshold, op, "s").passed is passed  # type: ignore[arg-type]


def test_the_verdict_fails_when_any_check_fails() -> None:
    assert report().verdict == "pass"
    failing = [Check("ok", 1, 2, "<=", "s"), Check("bad", None, 2, "<=", "s", "no samples")]
    assert report(failing).verdict == "fail"


def test_a_report_with_no_checks_passes() -> None:
    assert report([]).verdict == "pass"


CUT = Coverage(
    bound="max_requests", limit=100_000, end_s=793.2, trace_s=1800, planned=402_412,
    offered=100_000,
)  # fmt: skip
"""Issue 19's run: a diurnal day of 1800 s that the old default cap stopped 793 s in."""
WHOLE = Coverage(bound=None, limit=None, end_s=30, trace_s=30, planned=3000, offered=3000)


@pytest.mark.parametrize(
    ("coverage", "checks_pass", "verdict", "text", "exit_code"),
    [
        pytest.param(None, True, "pass", "PASS", 0, id="not-recorded-pass"),
        pytest.param(WHOLE, True, "pass", "PASS", 0, id="whole-trace-pass"),
        pytest.param(WHOLE, False, "fail", "FAIL", 1, id="whole-trace-fail"),
        pytest.param(
            CUT, True, "partial", "PASS (partial: 44% of the trace)", 3, id="cut-short-pass"
        ),
        pytest.param(
            CUT, False, "fail", "FAIL (partial: 44% of the trace)", 1, id="cut-short-fail"
        ),
    ],
)
def test_a_run_cut_short_never_reads_as_a_plain_pass(
    coverage: Coverage | None, checks_pass: bool, verdict: str, text: str, exit_code: int
) -> None:
    checks = [Check("p99", 10 if checks_pass else 500, 100, "<=", "ms")]
    cut = report(checks, coverage=coverage)
    assert (cut.verdict, cut.verdict_text, cut.exit_code) == (verdict, text, exit_code)


def test_the_cut_is_described_by_its_bound_time_and_shares() -> None:
    assert CUT.describe() == (
        "cut short by the request cap (100000 requests) at t = 793.2 s of the trace's "
        "1800 s: 100000 of 402412 planned requests (24%) and 44% of its duration were offered"
    )
    stopped = Coverage("stop", None, 12.04, 60, 3000, 601)
    assert stopped.describe().startswith("cut short by Ctrl-C at t = 12.0 s")
    limited = Coverage("time_limit", 20, 20, 60, 3000, 1000)
    assert "by the time limit (20 s) at t = 20.0 s" in limited.describe()
    # A run cut in its last moments still does not read 100%.
    assert Coverage("stop", None, 59.9, 60, 3000, 2995).partial_note == "partial: 99% of the trace"


def test_several_runs_together_take_the_worst_verdict() -> None:
    assert worst(["pass", "pass"]) == "pass"
    assert worst(["pass", "partial"]) == "partial"
    assert worst(["partial", "fail", "pass"]) == "fail"


# --- files ----------------------------------------------------------------------------------


def test_write_report_makes_a_directory_named_after_kind_and_utc_start(tmp_path: Path) -> None:
    directory = write_report(report(), tmp_path / "reports")
    assert directory == tmp_path / "reports" / "failover-20250314T150926Z"
    assert sorted(path.name for path in directory.iterdir()) == [
        REPORT_JSON,
        REPORT_MD,
        TIMELINE_PNG,
    ]


def test_a_second_report_of_the_same_second_gets_its_own_directory(tmp_path: Path) -> None:
    names = [write_report(report(), tmp_path).name for _ in range(3)]
    assert names == [
        "failover-20250314T150926Z",
        "failover-20250314T150926Z-2",
        "failover-20250314T150926Z-3",
    ]


def test_report_json_reads_back_to_the_same_report(tmp_path: Path) -> None:
    original = report(
        [Check("p99", 250.0, 100.0, "<=", "ms", "one CPU core saturates at 80 rps")],
        figures={"p99_ms": 250.0, "nothing": None, "count": 3},
    )
    directory = write_report(original, tmp_path)
    assert read_report(directory) == original
    data = json.loads((directory / REPORT_JSON).read_text())
    assert data["verdict"] == "fail"
    assert data["checks"][0]["passed"] is False
    assert data["checks"][0]["limit"] == "one CPU core saturates at 80 rps"
    assert data["started_at_utc"] == "2025-03-14 15:09:26 UTC"
    assert data["timeline"][10]["share"] == {"private": 0.0, "burst": 1.0}
    assert data["events"][0] == {"t": 10.0, "label": "t0: private killed"}


def test_report_json_is_strict_json_even_with_nan_figures(tmp_path: Path) -> None:
    directory = write_report(
        report([Check("p99", math.nan, 100.0, "<=", "ms")], figures={"p99_ms": math.inf}),
        tmp_path,
    )
    text = (directory / REPORT_JSON).read_text()
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text)
    assert data["checks"][0]["value"] is None
    assert data["figures"]["p99_ms"] is None


def test_report_md_leads_with_the_verdict_and_gives_failing_limits(tmp_path: Path) -> None:
    checks = [
        Check("failed requests", 3, 0, "<=", "requests", "3 requests were in flight on it"),
        Check("detection", 0.61, 1.0, "<=", "s"),
        Check("throughput", None, 50, ">=", "rps", "the generator could not keep its schedule"),
    ]
    text = (write_report(report(checks), tmp_path) / REPORT_MD).read_text()
    lines = text.splitlines()
    assert lines[0] == "# Failover drill — FAIL"
    assert "**FAIL**: 1 of 3 checks passed." in text
    summary = next(line for line in lines if line.startswith("failed requests:"))
    assert summary.startswith(
        "failed requests: 3 requests (<= 0 requests) FAIL — 3 requests were in flight on it."
    )
    assert "detection: 0.61 s (<= 1 s) PASS." in summary
    assert "| Check | Value | Threshold | Result | What limits it |" in lines
    assert (
        "| failed requests | 3 requests | <= 0 requests | **FAIL** | "
        "3 requests were in flight on it |"
    ) in lines
    assert "| detection | 0.61 s | <= 1 s | PASS |  |" in lines
    assert (
        "| throughput | — | >= 50 rps | **FAIL** | the generator could not keep its schedule |"
        in (lines)
    )


def test_report_md_has_figures_notes_events_the_png_and_the_timeline(tmp_path: Path) -> None:
    text = (write_report(report(), tmp_path) / REPORT_MD).read_text()
    lines = text.splitlines()
    assert lines[0] == "# Failover drill — PASS"
    assert "| detection_s | 0.61 |" in lines
    assert "| cold_start | warm |" in lines
    assert "- Client CPU 30% of one core." in lines
    assert "| 10 | t0: private killed |" in lines
    assert "![timeline](timeline.png)" in lines
    header = (
        "| t | planned rps | sent | ok | failed | p50 ms | p99 ms | private share | "
        "burst share | private ready | burst ready | mode |"
    )
    assert header in lines
    assert "| 10 | 50 | 50 | 47 | 3 | 8 | 900 | 0% | 100% | 0 | 1 | failover |" in lines
    assert "| 0 | 50 | 50 | 50 | 0 | 8 | 30 | 99% | 1% | 2 | 1 | normal |" in lines


def test_report_md_keeps_table_cells_intact(tmp_path: Path) -> None:
    events = [Event(1.0, "weights 80|20\nthen 0|100")]
    text = (write_report(report(events=events), tmp_path) / REPORT_MD).read_text()
    assert "| 1 | weights 80\\|20 then 0\\|100 |" in text.splitlines()


def test_a_second_without_data_shows_a_dash(tmp_path: Path) -> None:
    row = TimelineRow(0, 5.0, 0, 0, 0, None, None, {}, {}, None)
    text = (write_report(report(timeline=[row]), tmp_path) / REPORT_MD).read_text()
    assert "| 0 | 5 | 0 | 0 | 0 | — | — | — |" in text.splitlines()


# --- timeline.png ---------------------------------------------------------------------------


def test_timeline_png_is_a_real_image_of_the_expected_size(tmp_path: Path) -> None:
    png = write_report(report(), tmp_path) / TIMELINE_PNG
    width, height = png_size(png)
    assert 900 <= width <= 1400 and 900 <= height <= 1400
    assert 30_000 < png.stat().st_size < 2_000_000, "five panels of lines are tens of kB"


def test_timeline_png_works_without_gateway_or_controller_data(tmp_path: Path) -> None:
    bare = [TimelineRow(t, 20.0, 20, 20, 0, None, None, {}, {}, None) for t in range(10)]
    png = write_report(report(timeline=bare, events=[]), tmp_path) / TIMELINE_PNG
    assert png_size(png)[0] > 0


def test_timeline_png_works_with_no_timeline_at_all(tmp_path: Path) -> None:
    directory = write_report(report([], timeline=[]), tmp_path)
    assert png_size(directory / TIMELINE_PNG)[0] > 0
    assert "No per-second data was recorded." in (directory / REPORT_MD).read_text()


def test_many_events_and_unknown_pools_and_modes_still_render(tmp_path: Path) -> None:
    timeline = [
        TimelineRow(t, 10.0, 10, 10, 0, 1.0, 2.0, {"edge": 1.0}, {"edge": 1}, "mystery")
        for t in range(5)
    ]
    events = [Event(t / 4, f"event {t} with a label long enough to collide") for t in range(20)]
    png = write_report(report(timeline=timeline, events=events), tmp_path) / TIMELINE_PNG
    assert png_size(png)[0] > 0


def test_repeated_reports_leave_no_figure_open(tmp_path: Path) -> None:
    for _ in range(3):
        write_report(report(), tmp_path)
    assert plt.get_fignums() == []


def test_a_cut_run_says_so_in_report_md_first_line_and_report_json(tmp_path: Path) -> None:
    directory = write_report(report(coverage=CUT), tmp_path)
    first = (directory / REPORT_MD).read_text().splitlines()[0]
    assert first == f"# Failover drill — PASS (partial: 44% of the trace): {CUT.describe()}"
    data = json.loads((directory / REPORT_JSON).read_text())
    assert data["verdict"] == "partial"
    assert data["verdict_text"] == "PASS (partial: 44% of the trace)"
    assert data["coverage"] == {
        "bound": "max_requests",
        "limit": 100_000,
        "end_s": 793.2,
        "trace_s": 1800,
        "planned": 402_412,
        "offered": 100_000,
        "complete": False,
        "trace_share": 0.4407,
        "requests_share": 0.2485,
        "summary": CUT.describe(),
    }
    assert read_report(directory) == report(coverage=CUT)


def test_a_whole_run_reads_plainly(tmp_path: Path) -> None:
    directory = write_report(report(coverage=WHOLE), tmp_path)
    assert (directory / REPORT_MD).read_text().splitlines()[0] == "# Failover drill — PASS"
    data = json.loads((directory / REPORT_JSON).read_text())
    assert data["verdict"] == "pass" and data["coverage"]["complete"] is True
