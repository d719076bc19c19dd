"""Interruption notices, checked before anything is signalled: a notice needs time, a
replica that runs, and a replacement waits for a free slot, saying so once
(test_interruption_e2e.py has a notice on the real stack)."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pytest

from spillover.drivers.local.converge import Converger
from spillover.drivers.local.errors import StackError
from spillover.drivers.local.layout import LocalLayout, LocalPool
from spillover.drivers.local.replicas import ReplicaProcesses
from spillover.drivers.local.state import ReplicaRecord, RunDir, StackState
from spillover.drivers.processes import start_ticks


def _converger_with(tmp_path: Path, **records: ReplicaRecord) -> Converger:
    layout = LocalLayout((LocalPool("private", 1, 2), LocalPool("burst", 1, 2)), port_base=20000)
    state = StackState.new(layout)
    state.replicas = dict(records)
    run_dir = RunDir(tmp_path / "run")
    run_dir.save(state)
    return Converger(ReplicaProcesses(run_dir))


def test_a_state_file_from_before_notices_still_loads(tmp_path: Path):
    _converger_with(tmp_path, **{"burst-0": ReplicaRecord("burst-0", "burst", 1, 2, "x.log")})
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
    converger = _converger_with(tmp_path)
    with pytest.raises(StackError, match="seconds > 0"):
        converger.notify_interruption("burst-0", seconds)


def test_a_notice_to_an_unknown_replica_names_it_and_the_known_ones(tmp_path: Path):
    own = ReplicaRecord("private-0", "private", os.getpid(), start_ticks(os.getpid()) or 0, "l")
    converger = _converger_with(tmp_path, **{"private-0": own})
    with pytest.raises(StackError, match=r"no replica 'burst-7' .*\(replicas: private-0\)"):
        converger.notify_interruption("burst-7", 3)


def test_a_notice_to_a_replica_that_exited_says_so(tmp_path: Path):
    gone = ReplicaRecord("burst-0", "burst", os.getpid(), 1, "log")  # same pid, other process
    converger = _converger_with(tmp_path, **{"burst-0": gone})
    with pytest.raises(StackError, match="replica burst-0 is not running"):
        converger.notify_interruption("burst-0", 3)
    assert converger.run_dir.require().replicas["burst-0"].interrupt_at is None


def test_no_free_slot_makes_the_replacement_wait_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    noticed = ReplicaRecord("burst-0", "burst", 1, 1, "l", interrupt_at=time.time() + 60)
    busy = ReplicaRecord("burst-1", "burst", 1, 1, "l")
    converger = _converger_with(tmp_path, **{"burst-0": noticed, "burst-1": busy})
    state = converger.run_dir.require()
    slots = state.layout.pool_slots("burst")
    with caplog.at_level(logging.WARNING, logger="spillover.drivers.local.converge"):
        for _ in range(3):
            assert converger.free_slots(state, "burst", slots, missing=1) == []
    waits = [r.message for r in caplog.records if "wait for burst-0" in r.message]
    assert waits == [
        "pool burst has no free slot for 1 replacement(s): they wait for burst-0 (leaving) to stop"
    ]
