"""`converge` never waits on a replica: the controller calls it every tick, and a tick
spent waiting for a replica to drain or exit is a tick blind to everything else.

A replica leaving its pool moves on a step per call: drained and given a notice, then
SIGTERM (its slot in maintenance) once no request is in flight on it or the notice
runs out, then forgotten once its processes have exited, or SIGKILLed after the grace.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from spillover.drivers.haproxy import BACKENDS, GRPC_BACKEND, ServerStats
from spillover.drivers.local.converge import Converger
from spillover.drivers.local.layout import LocalLayout, LocalPool
from spillover.drivers.local.replicas import ReplicaProcesses
from spillover.drivers.local.state import ReplicaRecord, RunDir, StackState
from spillover.drivers.processes import (
    group_members,
    is_running,
    start_process,
    start_ticks,
    stop_groups,
)
from spillover.local.stack import LocalStack
from spillover.settings import DEFAULTS, LocalSettings
from tests.drivers.gateway_harness import stats_row

# On real processes behind a stand-in gateway; test_converge_e2e.py has the real stack.


def _timed(call: Callable[[], None]) -> float:
    started = time.monotonic()
    call()
    return time.monotonic() - started


def _graceful(ready: Path) -> list[str]:
    """A replica that takes a moment to exit on SIGTERM, as Triton does while it unloads
    its models; one that exited at once could be gone within the very call that signals
    it, before a test could see it stopping."""
    return [
        sys.executable,
        "-c",
        "import pathlib, signal, sys, time;"
        "signal.signal(signal.SIGTERM, lambda *_: (time.sleep(0.3), sys.exit(0)));"
        "pathlib.Path(sys.argv[1]).touch();"
        "time.sleep(60)",
        str(ready),
    ]


def _stubborn(ready: Path) -> list[str]:
    """A replica stuck on its way out: ignores SIGTERM, says when that is in place."""
    return [
        sys.executable,
        "-c",
        "import pathlib, signal, sys, time;"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        "pathlib.Path(sys.argv[1]).touch();"
        "time.sleep(60)",
        str(ready),
    ]


def _orphaning(ready: Path) -> list[str]:
    """A leader with a child in its group that ignores SIGTERM, like Triton's stubs."""
    child = (
        "import pathlib, signal, sys, time;"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        "pathlib.Path(sys.argv[1]).touch();"
        "time.sleep(60)"
    )
    return [
        sys.executable,
        "-c",
        "import subprocess, sys, time;"
        f"subprocess.Popen([sys.executable, '-c', {child!r}, sys.argv[1]]);"
        "time.sleep(60)",
        str(ready),
    ]


@dataclass
class StandInGateway:
    """What converge asks of the gateway: stats, drain, maintenance, enable."""

    status: dict[str, Any]
    in_flight: dict[str, int] = field(default_factory=dict)
    """Requests in flight by server, on the gRPC backend: every backend counts."""
    stats_calls: int = 0

    def server_stats(self) -> list[ServerStats]:
        self.stats_calls += 1
        return [
            stats_row(
                backend,
                name,
                status,
                current_sessions=self.in_flight.get(name, 0) if backend == GRPC_BACKEND else 0,
            )
            for name, status in self.status.items()
            for backend in BACKENDS
        ]

    def drain_server(self, name: str) -> None:
        self.status[name] = "DRAIN"

    def disable_server(self, name: str) -> None:
        self.status[name] = "MAINT"

    def enable_server(self, name: str) -> None:
        self.status[name] = "UP"


@dataclass
class Bench:
    converger: Converger
    gateway: StandInGateway
    started: list[int]
    tmp_path: Path

    def stop_grace(self, seconds: float) -> LocalSettings:
        """Give leaving replicas `seconds` between SIGTERM and SIGKILL, not 8 s."""
        settings = replace(DEFAULTS.local, stop_grace_s=seconds)
        self.converger.replica_processes.settings = settings
        return settings

    def replica(self, name: str, command: list[str] | None = None, **fields) -> ReplicaRecord:
        """Start a stand-in replica process in its own group and record it."""
        ready = self.tmp_path / f"{name}.ready"
        process = start_process(command or _graceful(ready), self.tmp_path / f"{name}.log")
        self.started.append(process.pid)
        started = start_ticks(process.pid)
        assert started is not None
        _until(ready.exists, 10, f"{name} never got ready")  # its SIGTERM handler is in place
        record = ReplicaRecord(name, name.rsplit("-", 1)[0], process.pid, started, "l", **fields)
        state = self.converger.run_dir.require()
        state.replicas[name] = record
        self.converger.run_dir.save(state)
        self.gateway.status[name] = "DRAIN" if record.interrupt_at else "UP"
        return record

    def records(self) -> dict[str, ReplicaRecord]:
        return self.converger.run_dir.require().replicas

    def converge(self, pool: str, replicas: int) -> float:
        return _timed(lambda: self.converger.converge(pool, replicas))

    def converge_until_gone(self, pool: str, replicas: int, name: str) -> None:
        """Converge as ticks would until `name` is forgotten; fail after 5 s."""
        deadline = time.monotonic() + 5
        while name in self.records():
            assert time.monotonic() < deadline, f"{name} was never forgotten"
            assert self.converge(pool, replicas) < 0.5
            time.sleep(0.02)


def _until(condition: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.02)


@pytest.fixture
def bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bench]:
    layout = LocalLayout((LocalPool("private", 1, 2), LocalPool("burst", 1, 2)), port_base=20000)
    run_dir = RunDir(tmp_path / "run")
    run_dir.save(StackState.new(layout))
    gateway = StandInGateway({slot.name: "MAINT" for slot in layout.slots})

    def no_triton(self: ReplicaProcesses, state: StackState, slots: list) -> list:
        raise AssertionError(f"converge started {[slot.name for slot in slots]}")

    monkeypatch.setattr(ReplicaProcesses, "start", no_triton)
    converger = Converger(ReplicaProcesses(run_dir, gateway))
    started: list[int] = []
    try:
        yield Bench(converger, gateway, started, tmp_path)
    finally:
        stop_groups(started, grace_s=0.5)


def test_an_extra_replica_leaves_drained_then_stops_once_idle(bench: Bench):
    keep, extra = bench.replica("burst-0"), bench.replica("burst-1")

    assert bench.converge("burst", 1) < 0.5
    leaving = bench.records()["burst-1"]
    assert leaving.interrupt_at is not None
    assert 0 < leaving.interrupt_at - time.time() <= DEFAULTS.local.drain_timeout_s
    assert bench.gateway.status["burst-1"] == "DRAIN"
    assert bench.gateway.status["burst-0"] == "UP"

    bench.gateway.in_flight["burst-1"] = 1  # a request still running there
    bench.converge("burst", 1)
    assert bench.records()["burst-1"].stop_requested_at is None
    assert bench.gateway.status["burst-1"] == "DRAIN"
    assert is_running(extra.pid, extra.started)

    bench.gateway.in_flight["burst-1"] = 0
    stats_calls = bench.gateway.stats_calls
    assert bench.converge("burst", 1) < 0.5
    assert bench.gateway.stats_calls == stats_calls + 1, "one stats read per converge"
    assert bench.records()["burst-1"].stop_requested_at is not None
    assert bench.gateway.status["burst-1"] == "MAINT"

    bench.converge_until_gone("burst", 1, "burst-1")
    assert not is_running(extra.pid, extra.started) and group_members(extra.pid) == []
    assert bench.gateway.status["burst-1"] == "MAINT"
    assert set(bench.records()) == {"burst-0"} and is_running(keep.pid, keep.started)
    assert bench.gateway.status["burst-0"] == "UP"


def test_a_leaving_replica_that_ignores_sigterm_is_killed_after_the_grace(
    bench: Bench, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    bench.stop_grace(0.5)
    stuck = bench.replica("burst-0", _stubborn(bench.tmp_path / "burst-0.ready"))
    bench.converge("burst", 0)
    assert bench.records()["burst-0"].interrupt_at is not None

    assert bench.converge("burst", 0) < 0.5  # idle: SIGTERM, not waited on
    requested = bench.records()["burst-0"].stop_requested_at
    assert requested is not None and bench.gateway.status["burst-0"] == "MAINT"
    bench.converge("burst", 0)
    assert is_running(stuck.pid, stuck.started), "killed before the grace ran out"

    with caplog.at_level(logging.WARNING, logger="spillover.drivers.local.converge"):
        _until(lambda: time.time() >= requested + 0.5, 2, "the clock stalled")
        assert bench.converge("burst", 0) < 0.5  # SIGKILL, not waited on either
        bench.converge_until_gone("burst", 0, "burst-0")
    assert group_members(stuck.pid) == []
    assert any("after SIGTERM: SIGKILL" in r.message for r in caplog.records)


def test_a_noticed_replica_with_requests_in_flight_is_stopped_when_its_notice_runs_out(
    bench: Bench, caplog: pytest.LogCaptureFixture
):
    noticed = bench.replica("burst-0", interrupt_at=time.time() + 0.6)
    bench.gateway.in_flight["burst-0"] = 2
    bench.converge("burst", 0)
    assert bench.records()["burst-0"].stop_requested_at is None
    assert bench.gateway.status["burst-0"] == "DRAIN" and is_running(noticed.pid, noticed.started)

    time.sleep(0.7)
    with caplog.at_level(logging.WARNING, logger="spillover.drivers.local.converge"):
        bench.converge("burst", 0)
    assert bench.records()["burst-0"].stop_requested_at is not None
    assert bench.gateway.status["burst-0"] == "MAINT"
    assert any("2 request(s) in flight" in r.message for r in caplog.records)
    bench.converge_until_gone("burst", 0, "burst-0")


def test_a_replica_that_exited_leaving_a_process_behind_is_forgotten_once_it_is_gone(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
):
    bench.stop_grace(0.3)
    crashed = bench.replica("burst-1", _orphaning(bench.tmp_path / "burst-1.ready"))
    bench.replica("burst-0")
    stubs = [pid for pid in group_members(crashed.pid) if pid != crashed.pid]
    assert len(stubs) == 1
    os.kill(crashed.pid, signal.SIGKILL)  # the leader dies; its child lingers
    _until(lambda: not is_running(crashed.pid, crashed.started), 5, "leader still alive")

    bench.converge("burst", 1)  # the slot stays taken while the child is there
    record = bench.records()["burst-1"]
    assert record.stop_requested_at is not None and bench.gateway.status["burst-1"] == "MAINT"
    bench.converge_until_gone("burst", 1, "burst-1")
    assert group_members(crashed.pid) == []


def test_a_leaving_replica_keeps_its_slot_when_the_pool_grows_back(
    bench: Bench, caplog: pytest.LogCaptureFixture
):
    bench.replica("burst-0")
    bench.replica("burst-1")
    bench.converge("burst", 1)
    assert bench.records()["burst-1"].interrupt_at is not None
    bench.gateway.in_flight["burst-1"] = 1  # still busy: not stopped yet

    with caplog.at_level(logging.WARNING, logger="spillover.drivers.local.converge"):
        for _ in range(3):
            bench.converge("burst", 2)  # no free slot: nothing starts (see the fixture)
    assert bench.gateway.status["burst-1"] == "DRAIN", "a leaving replica was re-enabled"
    waits = [r.message for r in caplog.records if "no free slot" in r.message]
    assert waits == [
        "pool burst has no free slot for 1 replacement(s): they wait for burst-1 (leaving) to stop"
    ]


def test_down_stops_replicas_in_every_leaving_state(bench: Bench, monkeypatch: pytest.MonkeyPatch):
    short = bench.stop_grace(0.5)
    serving = bench.replica("private-0")
    noticed = bench.replica("burst-0", interrupt_at=time.time() + 60)
    stuck = bench.replica(
        "burst-1", _stubborn(bench.tmp_path / "burst-1.ready"), interrupt_at=time.time() - 1
    )
    bench.gateway.in_flight["burst-0"] = 1
    bench.converge("burst", 0)  # burst-0 stays drained; burst-1 ignores its SIGTERM
    records = bench.records()
    assert records["burst-0"].interrupt_at and records["burst-0"].stop_requested_at is None
    assert records["burst-1"].stop_requested_at is not None

    assert LocalStack(bench.converger.run_dir.path, short).down() == 3
    for record in (serving, noticed, stuck):
        assert group_members(record.pid) == []
    assert bench.converger.run_dir.load() is None
