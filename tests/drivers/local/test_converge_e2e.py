"""`converge` on the real stack returns at once while a replica leaves under load, and
later calls stop it, with no failed request (see test_converge.py for the state machine
step by step)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from spillover.drivers.haproxy import RuntimeApi
from spillover.drivers.local.driver import LocalPoolDriver
from spillover.drivers.local.state import ReplicaRecord
from spillover.drivers.processes import group_members, is_running
from spillover.drivers.tritonserver import shm_prefix
from spillover.local.stack import LocalStack
from spillover.settings import DEFAULTS
from tests.drivers.local.paced_load import PacedLoad

QUICK_S = 1.0
"""A converge call that waited on a replica takes seconds (drain, then Triton's exit)."""


def _records(stack: LocalStack) -> dict[str, ReplicaRecord]:
    state = stack.run_dir.load()
    assert state is not None
    return state.replicas


def _stopping_or_gone(stack: LocalStack, name: str) -> bool:
    """Signalled to stop, or already forgotten: a replica that exits quickly goes from
    draining to forgotten within one call."""
    record = _records(stack).get(name)
    return record is None or record.stop_requested_at is not None


def _timed(call: Callable[[], None]) -> float:
    started = time.monotonic()
    call()
    return time.monotonic() - started


def test_scaling_burst_to_zero_under_load_returns_at_once_and_stops_it_over_later_calls(
    running_stack: LocalStack,
):
    stack = running_stack
    driver = LocalPoolDriver(stack.run_dir.path)  # the controller's scale, tick by tick
    gateway = RuntimeApi(stack.run_dir.gateway_socket)
    victim = _records(stack)["burst-0"]
    load = PacedLoad(stack).start()
    try:
        load.wait_for(20)
        assert any(r.total_sessions for r in gateway.server_stats() if r.server == "burst-0")

        took = _timed(lambda: driver.scale("burst", 0))
        assert took < QUICK_S, f"converge waited {took:.2f} s on the leaving replica"
        assert {r.status for r in gateway.server_stats() if r.server == "burst-0"} == {"DRAIN"}
        leaving = _records(stack)["burst-0"]
        assert leaving.interrupt_at is not None
        assert 0 < leaving.interrupt_at - time.time() <= DEFAULTS.local.drain_timeout_s
        assert leaving.stop_requested_at is None
        draining = {r.name: r.draining for r in driver.replicas()}
        assert draining == {"private-0": False, "burst-0": True}

        calls, stopping_by = [], None
        deadline = time.monotonic() + 30
        while "burst-0" in _records(stack) and time.monotonic() < deadline:
            time.sleep(0.25)  # a tick apart, roughly
            calls.append(_timed(lambda: driver.scale("burst", 0)))
            if stopping_by is None and _stopping_or_gone(stack, "burst-0"):
                stopping_by = time.time()
        assert "burst-0" not in _records(stack), "never stopped and forgotten"
        assert max(calls) < QUICK_S, f"a later converge waited: {max(calls):.2f} s"
        assert stopping_by is not None and stopping_by < leaving.interrupt_at, (
            "an idle replica waited for its notice to run out"
        )
        assert not is_running(victim.pid, victim.started)
        assert group_members(victim.pid) == []
        assert {r.status for r in gateway.server_stats() if r.server == "burst-0"} == {"MAINT"}
        regions = shm_prefix("burst-0", stack.run_dir.path)
        assert [p for p in Path("/dev/shm").iterdir() if p.name.startswith(regions)] == []
        assert [name for name in _records(stack) if name.startswith("burst")] == []
        load.wait_for(load.ok + 20)  # private serves it all
    finally:
        load.finish()
    assert load.failures == []
    print(f"converge(burst, 0) took {took:.3f} s; later calls at most {max(calls):.3f} s")
