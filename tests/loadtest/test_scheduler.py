"""The generator is open loop: it sends on schedule whatever the server does, and times
every request from when it should have left, so a slow or stalled server shows in full.

Against a stand-in Triton (Triton's HTTP infer route, slow or stalling on demand) and
against real Triton replicas over HTTP and gRPC.
"""

from __future__ import annotations

import gc
import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from loadtest import scheduler
from loadtest.results import LoadRun, Target
from loadtest.scheduler import LATE_MS, run_load
from loadtest.traces import Trace, arrivals, constant
from spillover.local.stack import LocalStack
from spillover.model.build import model_sizes
from tests.drivers.gateway_harness import free_port
from tests.loadtest.conftest import FakeTriton

USERS, ITEMS = 400, 1500


def _run(url: str, trace: Trace, protocol: str = "http", **options: object) -> LoadRun:
    settings: dict = {"n_users": USERS, "n_items": ITEMS, "max_requests": 100_000} | options
    return run_load(Target(url, protocol), trace, **settings)  # type: ignore[arg-type]


# --- open loop against a stand-in --------------------------------------------------------


def test_a_slow_server_does_not_slow_the_sends(fake_triton: FakeTriton) -> None:
    """50 rps for 2 s with 200 ms answers: all ~100 requests leave on time (a closed loop
    with one worker would send 10), each timed >= 200 ms from its intended send."""
    fake_triton.behave(delay_s=0.2)
    trace = constant(50, 2)
    began = time.monotonic()
    run = _run(fake_triton.url, trace, seed=1)
    elapsed = time.monotonic() - began

    planned = len(arrivals(trace, seed=1))
    assert abs(planned - 100) < 4 * 10  # Poisson: 4 sigma
    assert run.sent == planned == run.schedule.planned and run.succeeded == planned
    assert run.failed == 0 and run.errors == {}
    assert np.all(run.latency_s >= 0.2)
    assert elapsed < 2 + 0.2 + 1.0  # the last answer came 200 ms after the last send
    assert run.schedule.kept, run.schedule.reason
    assert run.schedule.max_in_flight >= 5  # ~10 awaited answers at any time
    # The server saw each request when it was meant to be sent.
    received = np.sort(np.array(fake_triton.received)) - run.started_at
    assert len(received) == planned
    assert np.percentile(np.abs(received - run.intended_s), 99) < LATE_MS / 1000 + 0.01
    assert run.achieved_rps == pytest.approx(planned / 2, rel=0.02)


def test_a_stall_shows_in_every_request_meant_to_leave_during_it(
    fake_triton: FakeTriton,
) -> None:
    """The server freezes from t = 1 s to t = 2 s. A closed loop would record one slow
    request; open loop keeps sending, and each request intended at t in the stall waits
    2 - t, measured from its intended time (no coordinated omission)."""
    start_at = time.time() + 0.3
    fake_triton.behave(delay_s=0.002, stall=(start_at + 1.0, start_at + 2.0))
    run = _run(fake_triton.url, constant(100, 3), start_at=start_at, seed=2)

    assert run.failed == 0 and run.schedule.kept, run.schedule.reason
    during = (run.intended_s >= 1.02) & (run.intended_s < 1.98)
    assert np.count_nonzero(during) > 60  # sending went on through the stall
    waited = 2.0 - run.intended_s[during]
    assert np.all(run.latency_s[during] >= waited - 0.005)
    assert np.all(run.latency_s[during] < waited + 0.1)
    before = run.intended_s < 0.98
    assert np.all(run.latency_s[before] < 0.1)

    second = run.seconds[1]
    assert second.sent == np.count_nonzero((run.intended_s >= 1) & (run.intended_s < 2))
    assert second.p99_ms is not None and second.p99_ms > 900
    assert second.p50_ms is not None and 350 < second.p50_ms < 650
    assert run.seconds[0].p99_ms is not None and run.seconds[0].p99_ms < 100
    assert run.percentile_ms(50, 1.0, 2.0) == second.p50_ms
    overall = run.percentile_ms(99)
    assert overall is not None and overall > 900


def test_per_second_stats_add_up_and_their_percentiles_come_from_hdr(
    fake_triton: FakeTriton,
) -> None:
    fake_triton.behave(delay_s=0.01)
    trace = constant(80, 2)
    run = _run(fake_triton.url, trace, seed=3)

    assert [s.second for s in run.seconds] == [0, 1]
    assert all(s.planned_rps == pytest.approx(80) for s in run.seconds)
    assert sum(s.sent for s in run.seconds) == run.sent
    assert sum(s.ok for s in run.seconds) == run.succeeded
    for stats in run.seconds:
        in_second = run.latency_s[np.floor(run.intended_s) == stats.second] * 1000
        for q, value in ((50, stats.p50_ms), (99, stats.p99_ms)):
            # The nearest-rank value (the slowest of 80 is their p99), to 3 digits.
            exact = np.sort(in_second)[math.ceil(q / 100 * len(in_second)) - 1]
            assert value == pytest.approx(exact, rel=0.001, abs=0.001)
    assert 0 < run.schedule.client_cpu_share < 1.0


def test_errors_are_counted_by_kind_with_examples(fake_triton: FakeTriton) -> None:
    fake_triton.behave(status=503)
    run = _run(fake_triton.url, constant(40, 1), seed=4)
    assert run.sent > 20 and run.failed == run.sent and run.succeeded == 0
    assert run.errors == {"HTTP 503": run.sent}
    assert 1 <= len(run.error_examples) <= 5
    assert run.error_examples[0].startswith("HTTP 503: [503]")
    assert np.all(np.isnan(run.latency_s)) and not np.any(run.ok)
    assert run.seconds[0].failed == run.sent and run.seconds[0].p99_ms is None
    assert run.percentile_ms(99) is None


@pytest.mark.parametrize(
    ("protocol", "kind"), [("http", "ClientConnectorError"), ("grpc", "UNAVAILABLE")]
)
def test_nothing_listening_fails_each_request_by_kind(protocol: str, kind: str) -> None:
    run = _run(f"127.0.0.1:{free_port()}", constant(20, 1), protocol, seed=5)
    assert run.sent > 5 and run.errors == {kind: run.sent}


def test_an_unanswered_request_times_out_and_the_run_still_ends(fake_triton: FakeTriton) -> None:
    fake_triton.behave(delay_s=30.0)
    began = time.monotonic()
    run = _run(fake_triton.url, constant(20, 1), request_timeout_s=0.5, seed=6)
    assert time.monotonic() - began < 1 + 0.2 + 0.5 + 1.0
    assert run.sent > 5 and run.errors == {"timeout": run.sent}
    assert run.error_examples[0] == "timeout: no answer within 0.5 s"


def test_stop_ends_the_run_and_the_plan_is_what_was_due_by_then(
    fake_triton: FakeTriton,
) -> None:
    stop = threading.Event()
    timer = threading.Timer(0.2 + 0.7, stop.set)  # 0.7 s after t = 0
    timer.start()
    began = time.monotonic()
    try:
        run = _run(fake_triton.url, constant(50, 60), stop=stop, seed=7)
    finally:
        timer.cancel()
    assert time.monotonic() - began < 2.0
    assert 0.6 < run.end_s < 0.9
    offsets = arrivals(constant(50, 60), seed=7)
    assert run.sent == run.schedule.planned == np.count_nonzero(offsets <= run.end_s)
    assert run.schedule.kept, run.schedule.reason
    assert len(run.seconds) == 1
    coverage = run.coverage
    assert coverage.bound == "stop" and not coverage.complete
    assert coverage.planned == len(offsets) and coverage.offered == run.sent
    assert coverage.trace_share == pytest.approx(run.end_s / 60)


def test_max_requests_bounds_the_run(fake_triton: FakeTriton) -> None:
    trace = constant(100, 60)
    began = time.monotonic()
    run = _run(fake_triton.url, trace, max_requests=40, seed=8)
    assert time.monotonic() - began < 2.0
    assert run.sent == run.schedule.planned == 40
    assert run.end_s == pytest.approx(arrivals(trace, seed=8)[39])
    assert len(run.seconds) == math.ceil(run.end_s)
    coverage = run.coverage
    assert (coverage.bound, coverage.limit, coverage.offered) == ("max_requests", 40, 40)
    assert coverage.planned == len(arrivals(trace, seed=8)) > 5000


def test_a_time_limit_ends_the_run_at_that_point_of_the_trace(fake_triton: FakeTriton) -> None:
    trace = constant(50, 60)
    began = time.monotonic()
    run = _run(fake_triton.url, trace, time_limit_s=1.0, seed=12)
    assert time.monotonic() - began < 2.5
    offsets = arrivals(trace, seed=12)
    assert run.sent == run.schedule.planned == np.count_nonzero(offsets <= 1.0)
    assert run.end_s == 1.0 and np.all(run.intended_s <= 1.0)
    assert run.schedule.kept, run.schedule.reason
    coverage = run.coverage
    assert (coverage.bound, coverage.limit, coverage.planned) == ("time_limit", 1.0, len(offsets))


def test_bounds_that_do_not_bind_leave_the_run_whole(fake_triton: FakeTriton) -> None:
    """A cap above the plan and a limit past the trace's end cut nothing: complete."""
    trace = constant(40, 1)
    planned = len(arrivals(trace, seed=13))
    run = _run(fake_triton.url, trace, max_requests=planned, time_limit_s=5.0, seed=13)
    assert run.sent == planned and run.end_s == 1.0
    assert run.coverage.complete and run.coverage.requests_share == 1.0


def test_a_plan_too_large_to_keep_is_refused_before_anything_is_sent(
    fake_triton: FakeTriton, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scheduler, "MAX_KEPT_REQUESTS", 1000)
    with pytest.raises(scheduler.PlanTooLargeError, match="plans about 6000 requests") as error:
        _run(fake_triton.url, constant(100, 60), max_requests=None, seed=14)
    assert "request cap or a time limit" in str(error.value)
    assert fake_triton.received == []
    # Its first part fits: a cap or a time limit within the bound runs.
    assert _run(fake_triton.url, constant(100, 60), max_requests=1000, seed=14).sent == 1000
    assert _run(fake_triton.url, constant(100, 60), max_requests=None, time_limit_s=0.5).sent


def test_a_quiet_end_of_the_trace_is_waited_out(fake_triton: FakeTriton) -> None:
    """Load for 0.5 s, then silence until 1.5 s: the run lasts the trace, so whatever
    a drill does in the quiet part still happens while the load runs."""
    trace = Trace("burst then quiet", ((0, 60), (0.5, 60), (0.5001, 0), (1.5, 0)))
    began = time.monotonic()
    run = _run(fake_triton.url, trace, seed=10)
    assert time.monotonic() - began >= 0.2 + 1.5 - 0.05
    assert run.sent > 10 and run.end_s == 1.5 and len(run.seconds) == 2
    assert run.seconds[1].sent == 0 and run.seconds[1].p99_ms is None
    assert run.schedule.kept, run.schedule.reason
    assert run.coverage.complete and run.coverage.trace_share == 1.0


def test_full_garbage_collections_during_a_run_hold_back_no_send(fake_triton: FakeTriton) -> None:
    """A process with a big heap, as a test session or a drill is, running full garbage
    collections mid-run (Python starts them by itself as the run allocates): the sends
    still leave on time, because the objects from before the run are not walked."""
    gc.disable()  # only to build the heap quickly
    try:
        heap = [{"key": [i], "value": [i, None]} for i in range(1_000_000)]
    finally:
        gc.enable()
    began = time.perf_counter()
    gc.collect()
    full_collection_s = time.perf_counter() - began
    assert full_collection_s > 0.1, "the heap is too small for a collection to hold sends up"

    start_at = time.time() + 0.3
    collections = [threading.Timer(0.3 + at, gc.collect) for at in (0.5, 1.2)]
    for timer in collections:
        timer.start()
    try:
        run = _run(fake_triton.url, constant(100, 2), start_at=start_at, seed=11)
    finally:
        for timer in collections:
            timer.cancel()
        del heap
    assert run.failed == 0, run.error_examples
    assert run.schedule.kept, (
        f"{run.schedule.reason} (a full collection took {full_collection_s * 1000:.0f} ms)"
    )


def test_a_generator_that_cannot_send_on_time_says_so(fake_triton: FakeTriton) -> None:
    """Starting 0.6 s behind schedule, as a generator starved of CPU would be: the
    run does not pass this off as the load asked for."""
    run = _run(fake_triton.url, constant(50, 2), start_at=time.time() - 0.6, seed=9)
    check = run.schedule
    assert run.sent == check.planned  # late, but everything went
    assert not check.kept
    assert check.lag_max_ms > 500 and check.late_share > 0.2
    assert check.reason is not None
    assert "sends ran up to" in check.reason and "ms late" in check.reason
    assert "of a core" in check.reason
    assert check.reason.endswith("offer less load or run the generator on another machine")


# --- real Triton ----------------------------------------------------------------------

RATE_RPS = 300
SECONDS = 3


def _replica(stack: LocalStack, protocol: str, name: str = "private-0") -> str:
    row = next(row for row in stack.status() if row.replica == name)
    return f"127.0.0.1:{row.ports.http if protocol == 'http' else row.ports.grpc}"


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_holds_its_rate_against_a_real_triton_replica(
    local_stack: LocalStack, model_repo: Path, protocol: str
) -> None:
    n_users, n_items = model_sizes(model_repo)
    target = Target(_replica(local_stack, protocol), protocol)  # type: ignore[arg-type]
    # A replica's first requests pay ONNX Runtime's lazy set-up on the same two cores
    # the generator needs; a benchmark warms up first, and so does this test.
    run_load(target, constant(50, 1), n_users=n_users, n_items=n_items, max_requests=100)
    trace = constant(RATE_RPS, SECONDS)
    run = run_load(
        target,
        trace,
        n_users=n_users,
        n_items=n_items,
        max_requests=10_000,
        seed=10,
    )
    check = run.schedule
    assert check.kept, check.reason
    assert run.failed == 0, run.error_examples
    assert run.sent == check.planned
    assert abs(check.planned - RATE_RPS * SECONDS) < 4 * math.sqrt(RATE_RPS * SECONDS)
    assert run.achieved_rps == pytest.approx(check.planned / SECONDS, rel=0.05)
    p99 = run.percentile_ms(99)
    assert p99 is not None and p99 < 1000


def test_sends_through_the_gateway(local_stack: LocalStack, model_repo: Path) -> None:
    n_users, n_items = model_sizes(model_repo)
    run = run_load(
        Target(local_stack.gateway_endpoints["grpc"], "grpc"),
        constant(100, 1),
        n_users=n_users,
        n_items=n_items,
        max_requests=1000,
        seed=11,
    )
    assert run.sent > 50 and run.failed == 0, run.error_examples
