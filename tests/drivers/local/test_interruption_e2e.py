"""Interruption notices on the real local stack: a replica told it will be stopped leaves
rotation at once, a replacement starts in a free slot, and it is stopped once it has
no request in flight (at the latest when the notice runs out), all with no failed
request."""

from __future__ import annotations

import re
import subprocess
import sys
import time

from spillover.drivers.haproxy import RuntimeApi
from spillover.drivers.local.driver import LocalPoolDriver
from spillover.drivers.local.state import ReplicaRecord
from spillover.drivers.processes import is_running
from spillover.local.stack import LocalStack
from tests.drivers.local.paced_load import PacedLoad

NOTICE_S = 5.0


def _rows(gateway: RuntimeApi, server: str) -> list:
    return [row for row in gateway.server_stats() if row.server == server]


def _sessions(gateway: RuntimeApi, server: str) -> int:
    return sum(row.total_sessions for row in _rows(gateway, server))


def _states(gateway: RuntimeApi, server: str) -> set[str]:
    return {row.status for row in _rows(gateway, server)}


def _records(stack: LocalStack) -> dict[str, ReplicaRecord]:
    return stack.run_dir.require().replicas


def _cli(stack: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "spillover", "local", "--run-dir", str(stack.run_dir.path)]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=30)


def test_a_noticed_replica_is_drained_replaced_then_stopped_with_no_failed_request(
    running_stack: LocalStack,
):
    stack = running_stack
    driver = LocalPoolDriver(stack.run_dir.path)  # the controller's scale, tick by tick
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
        driver.scale("burst", 1)  # as the controller's next tick
        records = _records(stack)
        assert {"burst-0", "burst-1"} <= set(records), "no replacement started"
        draining = {r.name: r.draining for r in driver.replicas()}
        assert draining == {"private-0": False, "burst-0": True, "burst-1": False}

        stopping_by = None
        deadline = time.monotonic() + 30
        while "burst-0" in _records(stack) and time.monotonic() < deadline:
            assert _states(gateway, "burst-0") <= {"DRAIN", "MAINT"}, "back in rotation"
            assert _sessions(gateway, "burst-0") == served_before_notice, "new requests"
            time.sleep(0.25)
            driver.scale("burst", 1)  # tick by tick
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
            driver.scale("burst", 1)  # the replacement joins once Triton is ready
            time.sleep(0.25)
        assert "burst-1" in gateway.ready_servers(), "the replacement never joined"
        gateway.set_pool_weights({"private": 1, "burst": 1})  # as the controller's weights
        before = _sessions(gateway, "burst-1")
        load.wait_for(load.ok + 20)
        assert _sessions(gateway, "burst-1") > before, "the replacement takes no traffic"
    finally:
        load.finish()
    assert load.failures == []
