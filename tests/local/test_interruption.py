"""Interruption notices on the local stack: a replica told it will be stopped leaves
rotation at once, a replacement starts in a free slot, and it is stopped once it has
no request in flight (at the latest when the notice runs out), all with no failed
request."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spillover.controller.actuators import LocalPoolDriver
from spillover.drivers.haproxy import RuntimeApi
from spillover.drivers.processes import is_running, start_ticks
from spillover.local.layout import LocalLayout, LocalPool
from spillover.local.stack import LocalStack, StackError
from spillover.local.state import ReplicaRecord, RunDir, StackState
from tests.local.paced_load import PacedLoad

NOTICE_S = 5.0


def _rows(gateway: RuntimeApi, server: str) -> list:
    return [row for row in gateway.server_stats() if row.server == server]


def _sessions(gateway: RuntimeApi, server: str) -> int:
    return sum(row.total_sessions for row in _rows(gateway, server))


def _states(gateway: RuntimeApi, server: str) -> set[str]:
    return {row.status for row in _rows(gateway, server)}


def _records(stack: LocalStack) -> dict[str, ReplicaRecord]:
    state = stack.run_dir.load()
    assert state is not None
    return state.replicas


def _cli(stack: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "spillover", "local", "--run-dir", str(stack.run_dir.path)]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=30)


def test_a_noticed_replica_is_drained_replaced_then_stopped_with_no_failed_request(
    running_stack: LocalStack,
):
    stack = running_stack
    gateway = RuntimeApi(stack.run_dir.gateway_socket)
    load = PacedLoad(stack).start()
    try:
        load.wait_for(20)
        assert _sessions(gateway, "burst-0") > 0  # it served its share until now

        notice = _cli(stack, "interrupt", "burst-0", "--in", f"{NOTICE_S:g}")
        assert notice.returncode == 0, notice.stderr
        assert re.fullmatch(
            r"burst-0 has an interruption notice: out of rotation now, "
            r"stopped once idle, by \d\d:\d\d:\d\d UTC at the latest\n",
            notice.stdout,
        ), notice.stdout
        interrupt_at = _records(stack)["burst-0"].interrupt_at
        assert interrupt_at is not None and 0 < interrupt_at - time.time() <= NOTICE_S
        assert _states(gateway, "burst-0") == {"DRAIN"}
        shown = {row.replica: row for row in stack.status()}
        assert shown["burst-0"].gateway_state == "DRAIN"
        assert shown["burst-0"].interrupt_at == interrupt_at
        status = _cli(stack, "status")
        line = next(line for line in status.stdout.splitlines() if " burst-0 " in line)
        assert "DRAIN" in line and re.search(r"stops once idle, in \d s at the latest", line), (
            status.stdout
        )
        served_before_notice = _sessions(gateway, "burst-0")

        victim = _records(stack)["burst-0"]
        stack.converge("burst", 1)  # as the controller's next tick
        records = _records(stack)
        assert {"burst-0", "burst-1"} <= set(records), "no replacement started"
        draining = {r.name: r.draining for r in LocalPoolDriver(stack.run_dir.path).replicas()}
        assert draining == {"private-0": False, "burst-0": True, "burst-1": False}

        stopping_by = None
        deadline = time.monotonic() + 30
        while "burst-0" in _records(stack) and time.monotonic() < deadline:
            assert _states(gateway, "burst-0") <= {"DRAIN", "MAINT"}, "back in rotation"
            assert _sessions(gateway, "burst-0") == served_before_notice, "new requests"
            time.sleep(0.25)
            stack.converge("burst", 1)  # tick by tick
            record = _records(stack).get("burst-0")  # forgotten, if it exited at once
            if stopping_by is None and (record is None or record.stop_requested_at):
                stopping_by = time.time()
        assert "burst-0" not in _records(stack), "never stopped"
        assert stopping_by is not None and stopping_by < interrupt_at, (
            "an idle replica waited for its notice to run out"
        )
        assert not is_running(victim.pid, victim.started)
        assert _states(gateway, "burst-0") == {"MAINT"}

        deadline = time.monotonic() + 60
        while "burst-1" not in gateway.ready_servers() and time.monotonic() < deadline:
            stack.converge("burst", 1)  # the replacement joins once Triton is ready
            time.sleep(0.25)
        assert "burst-1" in gateway.ready_servers(), "the replacement never joined"
        gateway.set_pool_weights({"private": 1, "burst": 1})  # as the controller's weights
        before = _sessions(gateway, "burst-1")
        load.wait_for(load.ok + 20)
        assert _sessions(gateway, "burst-1") > before, "the replacement takes no traffic"
    finally:
        load.finish()
    assert load.failures == []


# --- without processes -------------------------------------------------------------------


def _stack_with(tmp_path: Path, **records: ReplicaRecord) -> LocalStack:
    layout = LocalLayout((LocalPool("private", 1, 2), LocalPool("burst", 1, 2)), port_base=20000)
    state = StackState.new(layout)
    state.replicas = dict(records)
    RunDir(tmp_path / "run").save(state)
    return LocalStack(tmp_path / "run")


def test_a_state_file_from_before_notices_still_loads(tmp_path: Path):
    _stack_with(tmp_path, **{"burst-0": ReplicaRecord("burst-0", "burst", 1, 2, "x.log")})
    path = tmp_path / "run" / "state.json"
    document = json.loads(path.read_text())
    del document["replicas"]["burst-0"]["interrupt_at"]
    del document["replicas"]["burst-0"]["stop_requested_at"]
    path.write_text(json.dumps(document))
    state = RunDir(tmp_path / "run").load()
    assert state is not None and state.replicas["burst-0"].interrupt_at is None
    assert state.replicas["burst-0"].stop_requested_at is None


@pytest.mark.parametrize("seconds", [0.0, -3.0, float("nan"), float("inf")])
def test_a_notice_needs_a_positive_number_of_seconds(tmp_path: Path, seconds: float):
    stack = _stack_with(tmp_path)
    with pytest.raises(StackError, match="seconds > 0"):
        stack.notify_interruption("burst-0", seconds)


def test_a_notice_to_an_unknown_replica_names_it_and_the_known_ones(tmp_path: Path):
    own = ReplicaRecord("private-0", "private", os.getpid(), start_ticks(os.getpid()) or 0, "l")
    stack = _stack_with(tmp_path, **{"private-0": own})
    with pytest.raises(StackError, match=r"no replica 'burst-7' .*\(replicas: private-0\)"):
        stack.notify_interruption("burst-7", 3)


def test_a_notice_to_a_replica_that_exited_says_so(tmp_path: Path):
    gone = ReplicaRecord("burst-0", "burst", os.getpid(), 1, "log")  # same pid, other process
    stack = _stack_with(tmp_path, **{"burst-0": gone})
    with pytest.raises(StackError, match="replica burst-0 is not running"):
        stack.notify_interruption("burst-0", 3)
    assert _records(stack)["burst-0"].interrupt_at is None


def test_the_command_refuses_a_notice_of_no_time(tmp_path: Path):
    command = [sys.executable, "-m", "spillover", "local", "--run-dir", str(tmp_path / "run")]
    result = subprocess.run(
        [*command, "interrupt", "burst-0", "--in", "0"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "above 0" in result.stderr


def test_no_free_slot_makes_the_replacement_wait_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    noticed = ReplicaRecord("burst-0", "burst", 1, 1, "l", interrupt_at=time.time() + 60)
    busy = ReplicaRecord("burst-1", "burst", 1, 1, "l")
    stack = _stack_with(tmp_path, **{"burst-0": noticed, "burst-1": busy})
    state = stack.run_dir.load()
    assert state is not None
    slots = state.layout.pool_slots("burst")
    with caplog.at_level(logging.WARNING, logger="spillover.local.stack"):
        for _ in range(3):
            assert stack._free_slots(state, "burst", slots, missing=1) == []
    waits = [r.message for r in caplog.records if "wait for burst-0" in r.message]
    assert waits == [
        "pool burst has no free slot for 1 replacement(s): they wait for burst-0 (leaving) to stop"
    ]
