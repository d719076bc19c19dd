"""The figures drills read off their samples, on hand-made samples and runs."""

from __future__ import annotations

import numpy as np
import pytest

from loadtest.drills import measure
from loadtest.results import LoadRun, ScheduleCheck, Target
from loadtest.timeline import GatewaySample
from loadtest.traces import constant
from spillover.controller.ledger import CategoryRate, DecisionRecord, Ledger, PoolUsage

SLO_MS = 100.0


def load_run(latencies_ms: list[float], ok: list[bool] | None = None, rate: float = 100.0):
    """Requests every 1/rate s with the given latencies."""
    count = len(latencies_ms)
    intended = np.arange(count) / rate
    ok_array = np.array(ok if ok is not None else [True] * count)
    latency = np.where(ok_array, np.array(latencies_ms) / 1000.0, np.nan)
    return LoadRun(
        trace=constant(rate, count / rate),
        target=Target("127.0.0.1:1", "grpc"),
        started_at=1000.0,
        intended_s=intended,
        latency_s=latency,
        ok=ok_array,
        errors={} if all(ok_array) else {"UNAVAILABLE": int((~ok_array).sum())},
        error_examples=[],
        schedule=ScheduleCheck(True, count, count, 1.0, 2.0, 0.0, 0.1, None),
        seconds=[],
    )


def test_recovery_is_the_end_of_the_last_window_over_the_slo():
    latencies = [10.0] * 300
    latencies[120:160] = [400.0] * 40  # slow from 1.2 s to 1.6 s
    run = load_run(latencies)
    assert measure.recovery_s(run, after_s=1.0, until_s=3.0, slo_ms=SLO_MS) == 1.0  # to 2.0 s


def test_a_failed_request_counts_as_not_recovered_and_a_clean_run_recovers_at_once():
    ok = [True] * 300
    ok[250] = False  # 2.5 s
    assert measure.recovery_s(load_run([10.0] * 300, ok), 1.0, 3.0, SLO_MS) == 2.0
    assert measure.recovery_s(load_run([10.0] * 300), 1.0, 3.0, SLO_MS) == 0.0


def test_within_slo_share_counts_failures_and_slow_answers_against_it():
    latencies = [10.0] * 100
    latencies[:5] = [500.0] * 5
    ok = [True] * 100
    ok[10] = False
    assert measure.within_slo_share(load_run(latencies, ok), 0.0, 1.0, SLO_MS) == 0.94


def gateway(at: float, private: int, burst: int, status: str = "UP") -> GatewaySample:
    return GatewaySample(
        at, {"private-0": status, "burst-0": "UP"}, {"private": private, "burst": burst}
    )


def test_share_comes_from_counter_differences_over_the_window():
    samples = [gateway(0.0, 0, 0), gateway(1.0, 90, 10), gateway(2.0, 100, 100)]
    assert measure.share_at(samples, "private", 1.0) == 0.9
    assert measure.share_at(samples, "private", 2.0) == 0.1
    assert measure.first_share_at_least(samples, "burst", 0.5, 0.5) == 2.0


def test_a_gateway_restart_gives_no_share():
    samples = [gateway(0.0, 500, 0), gateway(1.0, 10, 0)]
    assert measure.share_at(samples, "private", 1.0) is None


def test_first_at_sees_the_pool_marked_down():
    samples = [gateway(0.0, 0, 0), gateway(0.5, 0, 0, "DOWN"), gateway(1.0, 0, 0, "DOWN")]
    assert measure.first_at(samples, 0.2, measure.none_up("private")) == 0.5
    assert measure.first_at(samples, 0.0, measure.none_up("burst")) is None


def decision(at: float, kind: str, text: str, reason: str = "why") -> DecisionRecord:
    return DecisionRecord(at, kind, text, reason)


def test_resizes_keep_only_changes_from_the_known_sizes():
    records = [
        decision(1.0, "ScalePool", "scale burst to 1"),  # already 1: the loop logs repeats
        decision(2.0, "SetMode", "mode burst"),
        decision(3.0, "ScalePool", "scale burst to 3"),
        decision(4.0, "ScalePool", "scale burst to 2"),
    ]
    changes = measure.resizes(records, {"burst": 1})
    assert [(c.at, c.before, c.after) for c in changes] == [(3.0, 1, 3), (4.0, 3, 2)]
    assert measure.first_mode(records, "burst", 0.0) == 2.0
    assert measure.first_mode_other_than(records, "safe", 2.5) is None


RACKS = CategoryRate("operations", "replica-h", 0.3, "racks", "replica_seconds", 1 / 3600)
"""A category beside compute: a drill's spend counts it as `spillover spend` does."""


def test_spend_sums_the_ledger_windows_a_range_overlaps_as_the_ledger_does(tmp_path) -> None:
    """A drill reads the ledger's rows once and sums ranges itself: the sums must be the
    ledger's own (`spillover spend`), window edges included."""
    with Ledger(tmp_path / "ledger.db", window_seconds=5) as ledger:
        for tick in range(0, 31):
            at = 1000.0 + tick
            ledger.record(
                at,
                [
                    PoolUsage("private", "private", 2, 1.2, "owned", tick * 10, 0, rates=(RACKS,)),
                    PoolUsage("burst", "burst", 1 if 10 <= tick < 20 else 0, 0.45, "spot", 0, 0),
                ],
            )
        charges = [*ledger.windows(1000.0, 1030.0), *ledger.category_windows(1000.0, 1030.0)]
        for since, until in [
            (1000.0, 1030.0),
            (1002.5, 1012.5),
            (1010.0, 1015.0),
            (1019.9, 1020.1),
        ]:
            expected = {str(row.key): row.usd for row in ledger.spend(since, until, by="pool")}
            summed = measure.spend_by_pool(charges, ledger.window_seconds, since, until)
            assert summed == pytest.approx(expected), (since, until)
            assert list(summed) == sorted(expected)
    assert summed["burst"] > 0


def test_a_timing_check_says_why_it_failed_whether_late_or_never() -> None:
    never, late = "it never happened", "it came late"
    assert measure.timing_check("c", 1.0, 2.0, never, late).limit is None
    assert measure.timing_check("c", 3.0, 2.0, never, late).limit == late
    assert measure.timing_check("c", 3.0, 2.0, never).limit == never
    missing = measure.timing_check("c", None, 2.0, never, late)
    assert missing.limit == never and not missing.passed
