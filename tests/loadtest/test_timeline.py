"""Samplers against a real gateway and a real ledger file; the timeline built from samples.

What an operator reads off a report depends on these: a replica that dies shows as DOWN,
traffic shows up in the pool that served it and in the second it was served, replicas
and mode change in the second the controller saw them change, and a gateway restart is
a gap rather than a nonsense share.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loadtest import traces
from loadtest.results import LoadRun, ScheduleCheck, SecondStats, Target
from loadtest.timeline import (
    ControllerSample,
    ControllerSampler,
    GatewaySample,
    GatewaySampler,
    TimelineRow,
    build_timeline,
)
from spillover.controller.ledger import Ledger
from spillover.drivers import haproxy
from tests.drivers.gateway_harness import (
    FakeReplica,
    HttpClient,
    make_spec,
    start_replicas,
    wait_for,
)

READY_TIMEOUT_S = 5.0
DOWN_TIMEOUT_S = 5.0
"""Health checks every 200 ms with fall 2 mark a dead replica DOWN well within this."""

T0 = 1_700_000_000.0
"""Epoch of t = 0 in the synthetic runs."""


# --- runs: the generator's own classes, with per-second figures made up ---------------


def stats(
    second: int,
    planned_rps: float = 10.0,
    sent: int = 10,
    ok: int = 10,
    failed: int = 0,
    p50_ms: float | None = 5.0,
    p99_ms: float | None = 20.0,
) -> SecondStats:
    return SecondStats(second, planned_rps, sent, ok, failed, p50_ms, p99_ms)


def load_run(seconds: list[SecondStats], started_at: float = T0) -> LoadRun:
    """A run of a flat 10 rps trace; build_timeline reads only its seconds and start."""
    empty = np.zeros(0)
    return LoadRun(
        trace=traces.constant(10.0, max(1, len(seconds))),
        target=Target("127.0.0.1:1", "http"),
        started_at=started_at,
        intended_s=empty,
        latency_s=empty,
        ok=np.zeros(0, dtype=bool),
        errors={},
        error_examples=[],
        schedule=ScheduleCheck(True, 0, 0, 0.0, 0.0, 0.0, 0.0, None),
        seconds=seconds,
    )


def run_of(n_seconds: int) -> LoadRun:
    return load_run([stats(t) for t in range(n_seconds)])


def gw(at: float, **responses: int) -> GatewaySample:
    return GatewaySample(T0 + at, {}, dict(responses))


def ctl(at: float, mode: str, **ready: int) -> ControllerSample:
    pools = {pool: {"pool": pool, "ready": count} for pool, count in ready.items()}
    return ControllerSample(T0 + at, mode, 10.0, pools)


# --- build_timeline ---------------------------------------------------------------------


def test_one_row_per_second_with_the_generators_figures() -> None:
    run = load_run([stats(0, sent=5, ok=4, failed=1, p99_ms=30.0), stats(1), stats(2)])
    rows = build_timeline(run)
    assert [row.t for row in rows] == [0, 1, 2]
    assert rows[0] == TimelineRow(0, 10.0, 5, 4, 1, 5.0, 30.0, {}, {}, None)


def test_a_second_the_generator_did_not_report_is_planned_but_empty() -> None:
    rows = build_timeline(load_run([stats(0), stats(2)]))
    assert rows[1] == TimelineRow(1, 10.0, 0, 0, 0, None, None, {}, {}, None)


def test_no_seconds_no_rows() -> None:
    assert build_timeline(load_run([])) == []


def test_share_is_the_difference_between_the_samples_bracketing_each_second() -> None:
    gateway = [
        gw(-0.05, private=100, burst=0),
        gw(0.95, private=180, burst=20),
        gw(1.05, private=190, burst=20),
        gw(2.05, private=190, burst=70),
        gw(3.05, private=190, burst=70),
    ]
    rows = build_timeline(run_of(4), gateway)
    # Last sample at or before each start, first at or after each end:
    # second 0: -0.05 .. 1.05; second 1: 0.95 .. 2.05; second 2: 1.05 .. 3.05.
    assert rows[0].share == pytest.approx({"private": 90 / 110, "burst": 20 / 110})
    assert rows[1].share == pytest.approx({"private": 10 / 60, "burst": 50 / 60})
    assert rows[2].share == pytest.approx({"private": 0.0, "burst": 1.0})
    assert rows[3].share == {}, "no sample at or after its end"


def test_a_pool_that_appears_later_counts_from_zero() -> None:
    rows = build_timeline(run_of(1), [gw(0.0, private=10), gw(1.0, private=20, burst=30)])
    assert rows[0].share == pytest.approx({"private": 0.25, "burst": 0.75})


def test_no_responses_in_a_second_is_no_share_not_zero() -> None:
    rows = build_timeline(run_of(1), [gw(0.0, private=10), gw(1.0, private=10)])
    assert rows[0].share == {}


def test_a_gateway_restart_gives_no_share_for_the_seconds_it_spans() -> None:
    gateway = [
        gw(0.0, private=500, burst=100),
        gw(1.0, private=600, burst=100),
        gw(1.5, private=3, burst=0),  # restarted: counters begin again
        gw(2.0, private=50, burst=50),
        gw(3.0, private=100, burst=100),
    ]
    rows = build_timeline(run_of(3), gateway)
    assert rows[0].share == pytest.approx({"private": 1.0, "burst": 0.0})
    assert rows[1].share == {}, "even though the end counts are below the start counts"
    assert rows[2].share == pytest.approx({"private": 0.5, "burst": 0.5})


def test_samples_far_apart_give_no_share_rather_than_a_smeared_one() -> None:
    rows = build_timeline(run_of(5), [gw(0.0, private=0), gw(5.0, private=500)])
    assert all(row.share == {} for row in rows)


def test_samples_are_used_in_time_order_whatever_order_they_come_in() -> None:
    rows = build_timeline(run_of(1), [gw(1.0, private=20), gw(0.0, private=10)])
    assert rows[0].share == {"private": 1.0}


def test_replicas_and_mode_come_from_the_last_controller_sample_by_the_end_of_a_second() -> None:
    controller = [
        ctl(1.2, "normal", private=2, burst=0),
        ctl(1.9, "failover", private=0, burst=0),
        ctl(3.0, "failover", private=0, burst=1),  # exactly at the end of second 2
        ctl(4.5, "normal", private=1, burst=1),
    ]
    rows = build_timeline(run_of(5), controller=controller)
    assert [(row.mode, row.replicas) for row in rows] == [
        (None, {}),
        ("failover", {"private": 0, "burst": 0}),
        ("failover", {"private": 0, "burst": 1}),
        ("failover", {"private": 0, "burst": 1}),
        ("normal", {"private": 1, "burst": 1}),
    ]


def test_a_pool_the_controller_could_not_count_has_no_replica_figure() -> None:
    sample = ControllerSample(T0, "safe", None, {"private": {"ready": None}, "burst": {}})
    assert build_timeline(run_of(1), controller=[sample])[0].replicas == {}


# --- GatewaySampler -----------------------------------------------------------------------


@dataclass
class LiveGateway:
    spec: haproxy.GatewaySpec
    process: haproxy.GatewayProcess
    api: haproxy.RuntimeApi
    replicas: dict[str, FakeReplica]


@pytest.fixture
def live_gateway() -> Iterator[LiveGateway]:
    """private-0 and burst-0 (fake replicas) behind a real HAProxy, both ready, 50/50."""
    # Short fixed-depth directory: unix socket paths must stay under 108 bytes.
    run_dir = Path(tempfile.mkdtemp(prefix="spillover-lt-", dir="/tmp"))
    replicas = start_replicas([("private-0", []), ("burst-0", [])])
    process = None
    try:
        spec = make_spec(run_dir, [replica.slot() for replica in replicas])
        process = haproxy.start_gateway(spec, run_dir)
        api = process.runtime_api()
        for replica in replicas:
            api.enable_server(replica.name)
        for replica in replicas:
            api.wait_ready(replica.name, timeout=READY_TIMEOUT_S)
        api.set_pool_weights({"private": 50, "burst": 50})
        yield LiveGateway(spec, process, api, {replica.name: replica for replica in replicas})
    finally:
        if process is not None:
            process.stop()
        for replica in replicas:
            replica.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


def latest(sampler: GatewaySampler) -> GatewaySample | None:
    return sampler.samples[-1] if sampler.samples else None


def test_gateway_sampler_sees_a_server_go_down_after_its_replica_stops(
    live_gateway: LiveGateway,
) -> None:
    with GatewaySampler(live_gateway.spec.socket_path, interval_s=0.05) as sampler:
        wait_for(lambda: bool(sampler.samples), timeout_s=2.0)
        first = sampler.samples[0]
        assert first.status_by_server == {"private-0": "UP", "burst-0": "UP"}
        live_gateway.replicas["burst-0"].kill()
        wait_for(
            lambda: (
                (sample := latest(sampler)) is not None
                and sample.status_by_server.get("burst-0") == "DOWN"
            ),
            timeout_s=DOWN_TIMEOUT_S,
        )
    assert sampler.samples[-1].status_by_server["private-0"] == "UP"


def test_gateway_sampler_counts_responses_per_pool_as_requests_are_served(
    live_gateway: LiveGateway,
) -> None:
    client = HttpClient(live_gateway.spec.http_port)
    sampler = GatewaySampler(live_gateway.spec.socket_path, interval_s=0.05)
    try:
        sampler.start()
        wait_for(lambda: bool(sampler.samples), timeout_s=2.0)
        before = sampler.samples[-1].responses_by_pool
        answered = [client.infer() for _ in range(40)]
        served = {pool: sum(name.startswith(pool) for name in answered) for pool in before}
        wait_for(
            lambda: (
                (sample := latest(sampler)) is not None
                and all(
                    sample.responses_by_pool[pool] - before[pool] >= served[pool] for pool in before
                )
            ),
            timeout_s=2.0,
        )
    finally:
        sampler.stop()
        client.close()
    assert served["private"] > 0 and served["burst"] > 0, "50/50 weights must reach both pools"
    after = sampler.samples[-1].responses_by_pool
    assert sum(after.values()) - sum(before.values()) == 40
    times = [sample.at for sample in sampler.samples]
    assert times == sorted(times)


def test_gateway_sampler_records_nothing_while_no_gateway_answers(tmp_path: Path) -> None:
    sampler = GatewaySampler(tmp_path / "no-such.sock", interval_s=0.02)
    sampler.start()
    time.sleep(0.2)
    began = time.monotonic()
    sampler.stop()
    assert time.monotonic() - began < 1.0
    assert sampler.samples == []
    assert not sampler._thread.is_alive()


def test_gateway_sampler_keeps_sampling_across_a_gateway_restart(
    live_gateway: LiveGateway,
) -> None:
    client = HttpClient(live_gateway.spec.http_port)
    try:
        for _ in range(10):
            client.infer()
    finally:
        client.close()
    run_dir = live_gateway.spec.socket_path.parent
    with GatewaySampler(live_gateway.spec.socket_path, interval_s=0.05) as sampler:
        wait_for(lambda: bool(sampler.samples), timeout_s=2.0)
        assert sum(sampler.samples[-1].responses_by_pool.values()) >= 10
        live_gateway.process.stop()
        stopped_at = len(sampler.samples)
        time.sleep(0.3)
        assert len(sampler.samples) <= stopped_at + 1, "nothing to record while it is down"
        again = haproxy.start_gateway(live_gateway.spec, run_dir)
        try:
            wait_for(
                lambda: (
                    (sample := latest(sampler)) is not None
                    and sum(sample.responses_by_pool.values()) < 10
                ),
                timeout_s=3.0,
            )
        finally:
            again.stop()
    assert sampler.samples[-1].responses_by_pool.keys() == {"private", "burst"}


# --- ControllerSampler ----------------------------------------------------------------------


def status(at: float, mode: str, private_ready: int | None, burst_ready: int) -> str:
    def pool(name: str, ready: int | None) -> dict[str, Any]:
        return {"pool": name, "role": name, "status": "ok", "desired": 1, "ready": ready}

    return json.dumps(
        {
            "at": at,
            "mode": mode,
            "demand_rps": 42.5,
            "planned_rps": 50.0,
            "budget_limited": False,
            "tick_seconds": 1.0,
            "pools": [pool("private", private_ready), pool("burst", burst_ready)],
        }
    )


def test_controller_sampler_reads_each_saved_status_once(tmp_path: Path) -> None:
    database = tmp_path / "controller.db"
    with (
        Ledger(database, window_seconds=30) as ledger,
        ControllerSampler(database, interval_s=0.02) as sampler,
    ):
        ledger.save_controller_state(100.0, "{}", status(100.0, "normal", 2, 0))
        wait_for(lambda: len(sampler.samples) == 1, timeout_s=2.0)
        time.sleep(0.1)  # several polls of the same state
        ledger.save_controller_state(101.0, "{}", status(101.0, "failover", None, 1))
        wait_for(lambda: len(sampler.samples) == 2, timeout_s=2.0)
        time.sleep(0.1)
    first, second = sampler.samples
    assert (first.at, first.mode, first.demand_rps) == (100.0, "normal", 42.5)
    assert first.pools["private"]["ready"] == 2
    assert second.mode == "failover" and second.pools["private"]["ready"] is None
    assert len(sampler.samples) == 2, "the same status read again is not a new sample"
    with Ledger(database, window_seconds=None) as reopened:
        assert reopened.window_seconds == 30, "the sampler must not alter the file"


def test_controller_sampler_waits_for_the_database_to_appear(tmp_path: Path) -> None:
    database = tmp_path / "controller.db"
    with ControllerSampler(database, interval_s=0.02) as sampler:
        time.sleep(0.1)
        assert not database.exists(), "a sampler must not create the controller's file"
        with Ledger(database, window_seconds=10) as ledger:
            time.sleep(0.1)  # a fresh ledger has no state yet: nothing to record
            assert sampler.samples == []
            ledger.save_controller_state(5.0, "{}", status(5.0, "burst", 1, 2))
            wait_for(lambda: bool(sampler.samples), timeout_s=2.0)
    assert sampler.samples[0].mode == "burst"
    with Ledger(database, window_seconds=None) as reopened:
        assert reopened.window_seconds == 10


def test_controller_sampler_survives_a_file_that_is_not_a_ledger(tmp_path: Path) -> None:
    database = tmp_path / "controller.db"
    database.write_bytes(b"not sqlite at all" * 100)
    sampler = ControllerSampler(database, interval_s=0.02)
    sampler.start()
    time.sleep(0.1)
    assert sampler._thread.is_alive(), "a bad file must not end the sampler"
    sampler.stop()
    assert sampler.samples == []
    assert not sampler._thread.is_alive()


def test_controller_sampler_skips_a_status_it_cannot_read(tmp_path: Path) -> None:
    database = tmp_path / "controller.db"
    with Ledger(database) as ledger, ControllerSampler(database, interval_s=0.02) as sampler:
        ledger.save_controller_state(1.0, "{}", json.dumps({"at": 1.0, "pools": []}))
        time.sleep(0.1)
        assert sampler.samples == [], "a status without a mode is no sample"
        ledger.save_controller_state(2.0, "{}", status(2.0, "normal", 1, 0))
        wait_for(lambda: bool(sampler.samples), timeout_s=2.0)


def test_controller_sampler_stops_promptly_while_the_database_is_locked(
    tmp_path: Path,
) -> None:
    database = tmp_path / "controller.db"
    with Ledger(database) as ledger:
        ledger.save_controller_state(1.0, "{}", status(1.0, "normal", 1, 0))
    # An exclusive lock with the rollback journal blocks every reader, unlike WAL.
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("PRAGMA journal_mode=DELETE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        sampler = ControllerSampler(database, interval_s=0.02)
        sampler.start()
        time.sleep(0.3)
        assert sampler._thread.is_alive()
        assert sampler.samples == []
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    wait_for(lambda: bool(sampler.samples), timeout_s=10.0)
    stop_thread = threading.Thread(target=sampler.stop)
    stop_thread.start()
    stop_thread.join(timeout=6.0)
    assert not stop_thread.is_alive()


def test_timeline_from_a_live_gateway_puts_each_pools_traffic_in_its_second(
    live_gateway: LiveGateway,
) -> None:
    """Traffic to private in second 0, nothing in second 1, to burst in second 2."""
    client = HttpClient(live_gateway.spec.http_port)
    live_gateway.api.set_pool_weights({"private": 1})
    try:
        with GatewaySampler(live_gateway.spec.socket_path, interval_s=0.05) as sampler:
            wait_for(lambda: bool(sampler.samples), timeout_s=2.0)
            t0 = time.time() + 0.1
            _sleep_until(t0 + 0.1)
            answered = [client.infer() for _ in range(20)]
            live_gateway.api.set_pool_weights({"burst": 1})
            _sleep_until(t0 + 2.2)
            answered += [client.infer() for _ in range(20)]
            _sleep_until(t0 + 3.2)
    finally:
        client.close()
    assert time.time() - t0 < 3.9, "the machine was too slow for the seconds to stay apart"
    assert [name.split("-")[0] for name in answered] == ["private"] * 20 + ["burst"] * 20
    rows = build_timeline(load_run([stats(t) for t in range(3)], started_at=t0), sampler.samples)
    assert rows[0].share == {"private": 1.0, "burst": 0.0}
    assert rows[1].share == {}, "no responses in second 1"
    assert rows[2].share == {"private": 0.0, "burst": 1.0}


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))
