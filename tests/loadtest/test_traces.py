"""Traces: the shapes asked for, their integrals, Poisson arrivals around them, bad input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from loadtest import traces
from loadtest.traces import (
    Trace,
    TraceError,
    arrivals,
    constant,
    diurnal,
    draw_arrivals,
    flash_sale,
    ramp,
    replay,
)


def test_constant_is_flat_and_zero_outside_its_duration() -> None:
    trace = constant(100, 30)
    assert trace.duration_s == 30 and trace.peak_rps == 100
    assert trace.rate_at(0) == trace.rate_at(17.3) == trace.rate_at(30) == 100
    assert trace.rate_at(-0.1) == trace.rate_at(30.1) == 0
    assert trace.expected_requests() == pytest.approx(3000)
    assert trace.expected_requests(10, 12.5) == pytest.approx(250)
    assert trace.expected_requests(-5, 1) == pytest.approx(100)  # clipped to the trace
    assert trace.expected_requests(29, 40) == pytest.approx(100)
    assert trace.expected_requests(40, 50) == 0


def test_ramp_is_linear_and_integrates_to_its_mean() -> None:
    trace = ramp(0, 200, 10)
    assert trace.rate_at(2.5) == pytest.approx(50)
    assert trace.expected_requests() == pytest.approx(1000)
    assert trace.expected_requests(0, 5) == pytest.approx(250)  # a quarter in the first half
    assert trace.mean_rps == pytest.approx(100)


def test_diurnal_has_a_night_trough_and_an_evening_peak() -> None:
    day = 240.0  # 10 s per compressed hour
    trace = diurnal(500, day, trough_share=0.2)
    hour = day / 24
    assert trace.duration_s == day and trace.peak_rps == pytest.approx(500)
    assert trace.rate_at(20 * hour) == pytest.approx(500)  # 20:00
    assert trace.rate_at(3.5 * hour) == pytest.approx(100)  # 3:30, the trough
    assert min(rps for _, rps in trace.points) == pytest.approx(100)
    assert trace.rate_at(9 * hour) < trace.rate_at(12 * hour) < trace.rate_at(20 * hour)
    assert 100 * day < trace.expected_requests() < 500 * day
    flatter = diurnal(500, day, trough_share=0.6)
    assert flatter.rate_at(3.5 * hour) == pytest.approx(300)
    assert flatter.rate_at(20 * hour) == pytest.approx(500)


def test_flash_sale_rises_tenfold_in_seconds_holds_then_decays_to_base() -> None:
    trace = flash_sale(50, 500, 60, start_s=10, rise_s=2, hold_s=5, decay_s=10)
    assert trace.duration_s == 60 and trace.peak_rps == 500
    assert trace.rate_at(0) == trace.rate_at(9.99) == pytest.approx(50, abs=0.01)
    assert trace.rate_at(11) == pytest.approx(275)  # half-way up the 2 s rise
    assert trace.rate_at(12) == trace.rate_at(17) == 500
    # One time constant after the hold: base + (peak - base) / e; sampled every 0.5 s.
    assert trace.rate_at(27) == pytest.approx(50 + 450 / math.e)
    assert trace.rate_at(27.25) == pytest.approx(50 + 450 * math.exp(-1.025), rel=0.01)
    assert trace.rate_at(60) == pytest.approx(50 + 450 * math.exp(-4.3), rel=1e-6)
    seconds = [s for s, _ in trace.points]
    assert seconds == sorted(seconds) and seconds[-1] == 60


def test_flash_sale_cut_by_its_duration_ends_where_the_curve_is() -> None:
    trace = flash_sale(50, 500, 11, start_s=10)
    assert trace.duration_s == 11
    assert trace.rate_at(11) == pytest.approx(275)
    assert flash_sale(50, 500, 30, start_s=0).rate_at(0) == 50


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: constant(-1, 10), "rps"),
        (lambda: constant(10, 0), "duration_s"),
        (lambda: constant(10, -5), "duration_s"),
        (lambda: constant(math.nan, 5), "rps"),
        (lambda: ramp(10, -3, 5), "end_rps"),
        (lambda: diurnal(100, 60, trough_share=1.5), "trough_share"),
        (lambda: flash_sale(-1, 500, 60, 10), "base_rps"),
        (lambda: flash_sale(50, 500, 60, start_s=60), "start_s"),
        (lambda: flash_sale(50, 500, 60, start_s=-1), "start_s"),
        (lambda: flash_sale(50, 500, 60, 10, rise_s=0), "rise_s"),
        (lambda: flash_sale(50, 500, 60, 10, hold_s=-1), "hold_s"),
        (lambda: flash_sale(50, 500, 60, 10, decay_s=0), "decay_s"),
    ],
)
def test_bad_arguments_are_refused_naming_the_field(build, field: str) -> None:
    with pytest.raises(TraceError, match=rf"\b{field}\b"):
        build()


@pytest.mark.parametrize(
    ("points", "message"),
    [
        (((0, 10),), "at least two points"),
        (((1, 10), (5, 10)), "point 1: the first point must be at 0 seconds"),
        (((0, 10), (5, 10), (5, 20)), "point 3: seconds must increase"),
        (((0, 10), (5, -1)), "point 2: rps must be"),
        (((0, 10), (math.inf, 1)), "point 2: seconds must be a finite"),
    ],
)
def test_a_trace_table_must_start_at_zero_and_increase(points, message: str) -> None:
    with pytest.raises(TraceError, match=message):
        Trace("hand-made", points)


def test_clipped_cuts_at_the_curve() -> None:
    trace = ramp(0, 100, 10).clipped(4)
    assert trace.points == ((0, 0), (4, 40))
    assert ramp(0, 100, 10).clipped(20).duration_s == 10
    with pytest.raises(TraceError, match="duration_s"):
        ramp(0, 100, 10).clipped(0)


# --- CSV replay ---------------------------------------------------------------------


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "black-friday.csv"
    path.write_text(text)
    return path


def test_replay_reads_seconds_and_rps_with_or_without_a_header(tmp_path: Path) -> None:
    with_header = replay(_csv(tmp_path, "seconds,rps\n0,10\n5, 50\n\n# the peak\n10,20\n"))
    assert with_header.name == "black-friday"
    assert with_header.points == ((0, 10), (5, 50), (10, 20))
    assert with_header.expected_requests() == pytest.approx(5 * 30 + 5 * 35)
    assert replay(_csv(tmp_path, "0,10\n5,50\n10,20\n")).points == with_header.points


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seconds,rps\n0,10\n5,fifty\n", "line 3: expected `seconds,rps` numbers, got '5,fifty'"),
        ("0,10\n5,50\n5,60\n", "line 3: seconds must increase, got 5.0 after 5.0"),
        ("0,10\n5,50\n4,60\n", "line 3: seconds must increase"),
        ("0,10\n5,-2\n", "line 2: rps must be 0 or more, got -2"),
        ("0,10,3\n5,2\n", "line 1: expected 2 fields `seconds,rps`, got 3"),
        ("seconds,rps\n2,10\n5,2\n", "line 2: the first point must be at 0 seconds"),
        ("0,10\nnan,3\n", "line 2: seconds and rps must be finite"),
        ("seconds,rps\n0,10\n", "needs at least two `seconds,rps` lines"),
        ("", "found 0"),
        ("seconds,rps\nsecs,rate\n", "line 2: expected `seconds,rps` numbers"),
    ],
)
def test_replay_errors_name_the_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = _csv(tmp_path, text)
    with pytest.raises(TraceError) as error:
        replay(path)
    assert str(path) in str(error.value)
    assert message in str(error.value)


def test_replay_of_a_missing_or_binary_file_says_it_cannot_read_it(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match=r"missing\.csv: cannot read the trace"):
        replay(tmp_path / "missing.csv")
    binary = tmp_path / "trace.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(TraceError, match=r"trace\.csv: cannot read the trace"):
        replay(binary)


# --- arrivals -------------------------------------------------------------------------

TRACES = [
    constant(300, 20),
    ramp(0, 400, 20),
    diurnal(500, 30),
    flash_sale(40, 400, 40, start_s=10),
]


@pytest.mark.parametrize("trace", TRACES, ids=lambda trace: trace.name)
def test_arrivals_count_is_the_integral_within_poisson_noise(trace: Trace) -> None:
    expected = trace.expected_requests()
    for seed in range(5):
        offsets = arrivals(trace, seed=seed)
        assert abs(len(offsets) - expected) < 4 * math.sqrt(expected)
        assert np.all(np.diff(offsets) >= 0)
        assert offsets[0] >= 0 and offsets[-1] <= trace.duration_s


@pytest.mark.parametrize("trace", TRACES, ids=lambda trace: trace.name)
def test_arrivals_follow_the_shape_second_by_second(trace: Trace) -> None:
    """Thinning puts each second's share where the rate is: every second's count is
    within Poisson noise of the trace's integral there."""
    offsets = np.concatenate([arrivals(trace, seed=seed) for seed in range(10)])
    counts = np.bincount(offsets.astype(int), minlength=math.ceil(trace.duration_s))
    for second in range(int(trace.duration_s)):
        expected = 10 * trace.expected_requests(second, second + 1)
        assert abs(counts[second] - expected) < 5 * math.sqrt(expected) + 1, second


def test_arrivals_are_poisson_gaps_are_exponential() -> None:
    gaps = np.diff(arrivals(constant(1000, 20), seed=3))
    assert gaps.mean() == pytest.approx(1e-3, rel=0.03)
    assert gaps.std() == pytest.approx(gaps.mean(), rel=0.05)  # exponential: std == mean


def test_arrivals_are_reproducible_with_a_seed_and_bounded_by_max_requests() -> None:
    trace = flash_sale(40, 400, 40, start_s=10)
    assert np.array_equal(arrivals(trace, seed=7), arrivals(trace, seed=7))
    assert not np.array_equal(arrivals(trace, seed=7), arrivals(trace, seed=8))
    first = arrivals(trace, seed=7, max_requests=100)
    assert np.array_equal(first, arrivals(trace, seed=7)[:100])
    assert len(arrivals(trace, seed=7, max_requests=0)) == 0
    with pytest.raises(TraceError, match="max_requests"):
        arrivals(trace, max_requests=-1)


def test_a_silent_trace_has_no_arrivals() -> None:
    assert len(arrivals(constant(0, 10))) == 0
    assert np.all(arrivals(Trace("gap", ((0, 0), (5, 0), (6, 100), (7, 0))), seed=1) >= 5)


def test_a_capped_plan_still_counts_the_whole_trace() -> None:
    trace = flash_sale(40, 400, 40, start_s=10)
    whole = arrivals(trace, seed=7)
    capped = draw_arrivals(trace, seed=7, max_requests=100)
    assert np.array_equal(capped.offsets, whole[:100])
    assert capped.total == len(whole) > 100


def test_a_long_trace_is_drawn_in_pieces_with_the_same_shape(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pieces of 500 candidates bound the memory of drawing; the plan they make is still
    sorted, as many as the integral and even over time, and the cap keeps the first."""
    monkeypatch.setattr(traces, "ARRIVAL_PIECE", 500)
    trace = ramp(100, 300, 60)  # ~12,000 requests: 36 pieces
    plan = draw_arrivals(trace, seed=4, max_requests=5000)
    assert plan.total == pytest.approx(trace.expected_requests(), abs=4 * math.sqrt(12_000))
    assert len(plan.offsets) == 5000 and np.all(np.diff(plan.offsets) >= 0)
    whole = arrivals(trace, seed=4)
    assert len(whole) == plan.total and np.array_equal(whole[:5000], plan.offsets)
    counts = np.bincount(whole.astype(int), minlength=60)
    for second in range(60):
        expected = trace.expected_requests(second, second + 1)
        assert abs(counts[second] - expected) < 5 * math.sqrt(expected), second
