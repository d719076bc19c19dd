"""Two `spillover controller run` processes, one fake API server, one SQLite ledger.

Exactly one acts at any time: only the Lease holder reads and sets its pools' scale
(get_scale requests, told apart by each process's token) and writes the ledger. When
the leader is killed (SIGKILL: no release, as when its node dies) the follower takes
the Lease once it has seen it unrenewed for the lease duration, resumes from the
stored state, and its first record charges the gap at the dead leader's replicas:
every whole ledger window holds exactly running × window replica-seconds, no gap and
no double count.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from spillover.controller.ledger import Ledger
from tests.controller.cluster_setup import NAMESPACE, POOLS, add_pools, controller_config
from tests.drivers.fake_kube_api import FakeKubeApi

LEASE = (3, 2.0, 0.5)
"""Lease duration, renew deadline, retry period: client-go's 15/10/2 scaled down 5×."""
WINDOW_S = 2


@pytest.fixture
def kube_api() -> Iterator[FakeKubeApi]:
    with FakeKubeApi(token="a", more_tokens=("b",)) as api:
        add_pools(api)
        yield api


class Controller:
    """One controller process in its own process group, stopped by its PID."""

    def __init__(self, config: Path, run_dir: Path) -> None:
        self.log = run_dir.with_suffix(".log")
        run_dir.mkdir()
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "spillover", "controller", "run", "--config", str(config),
                 "--run-dir", str(run_dir)],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def signal(self, signum: int) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signum)

    def stop(self) -> None:
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.process.wait(timeout=5)


def _gauge(controller: Controller, name: str) -> float:
    """A value from the process's /metrics (its port is in its log)."""
    found = re.search(r"metrics on (http://\S+/metrics)", controller.log.read_text())
    assert found, "no metrics address in the log"
    with urllib.request.urlopen(found[1], timeout=5) as response:
        text = response.read().decode()
    [value] = re.findall(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(value)


def _status(api: FakeKubeApi) -> dict[str, Any]:
    resource = api.store.get("spillovers", NAMESPACE, "spillover")
    assert resource is not None
    return dict(resource.get("status") or {})


def _holder(api: FakeKubeApi) -> str | None:
    lease = api.store.get("leases", NAMESPACE, "spillover-controller")
    return lease["spec"]["holderIdentity"] if lease else None


def _wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _acts(api: FakeKubeApi, token: str) -> list[float]:
    return [
        r.at for r in api.requested("get_scale") + api.requested("patch_scale") if r.token == token
    ]


def test_one_leader_acts_and_a_killed_leader_is_replaced_without_ledger_gap(
    tmp_path: Path, kube_api: FakeKubeApi
) -> None:
    database = tmp_path / "controller.db"
    configs = {
        who: controller_config(tmp_path, kube_api, who, database=database, lease=LEASE)
        for who in ("a", "b")
    }
    a = Controller(configs["a"], tmp_path / "run-a")
    b: Controller | None = None
    try:
        _wait_for(lambda: _holder(kube_api) == "a", 30, "a to take the Lease")
        _wait_for(lambda: bool(_acts(kube_api, "a")), 10, "a to act")
        b = Controller(configs["b"], tmp_path / "run-b")
        _wait_for(lambda: "campaigning" in b.log.read_text(), 30, "b to campaign")
        time.sleep(3 * LEASE[0])  # three lease durations side by side
        assert _holder(kube_api) == "a"
        assert not _acts(kube_api, "b"), "the follower changed something while a led"
        assert {r.token for r in kube_api.requested("list_pods")} == {"a", "b"}, "both observe"
        assert _gauge(a, "spillover_leader") == 1
        assert _gauge(b, "spillover_leader") == 0, "the follower serves /metrics"
        assert _status(kube_api)["leader"] == "a"

        a.signal(signal.SIGKILL)
        a.process.wait(timeout=5)
        killed = time.monotonic()
        took_over = _wait_for(lambda: _holder(kube_api) == "b", 15, "b to take the Lease")
        takeover_s = took_over - killed
        print(f"takeover {takeover_s:.2f} s after the kill (lease {LEASE[0]} s)")
        # b saw a's last renew at most one (jittered) retry period late, then waits
        # the lease duration, then tries within one more retry period.
        assert takeover_s <= LEASE[0] + 2 * 1.2 * LEASE[2] + 0.5
        _wait_for(lambda: bool(_acts(kube_api, "b")), 10, "b to act")
        time.sleep(2 * WINDOW_S)
        b_leading_since = time.time() - 2 * WINDOW_S
        assert _gauge(b, "spillover_leader") == 1
        assert _status(kube_api)["leader"] == "b"
        b.stop()
        assert b.process.returncode == 0
        assert _holder(kube_api) == "", "a clean stop releases the Lease"
    finally:
        a.stop()
        if b is not None:
            b.stop()

    acted_a, acted_b = _acts(kube_api, "a"), _acts(kube_api, "b")
    assert max(acted_a) < killed < min(acted_b), "two controllers acted at once"
    assert min(acted_b) >= took_over - 0.5
    _assert_ledger_has_no_gap(database)
    with Ledger(database, window_seconds=None) as ledger:
        assert min(ledger.watermark(pool) or 0 for pool in POOLS) > b_leading_since, (
            "the new leader records into the shared ledger"
        )
        # b resumed a's stored state (mode safe): it did not announce safe mode again.
        modes = [d for d in ledger.decisions_since(0) if d.decision.startswith("mode ")]
        assert len(modes) == 1, [(d.at, d.decision) for d in modes]


def _assert_ledger_has_no_gap(database: Path) -> None:
    with Ledger(database, window_seconds=None) as ledger:
        windows = ledger.windows(0, time.time() + 60)
        first_at = min(d.at for d in ledger.decisions_since(0))
        for pool, (_, running, _) in POOLS.items():
            mine = sorted((w for w in windows if w.pool == pool), key=lambda w: w.window_start)
            watermark = ledger.watermark(pool)
            assert watermark is not None
            total = sum(w.replica_seconds for w in mine)
            assert total == pytest.approx(running * (watermark - first_at), abs=1e-6)
            whole = [w for w in mine if w.window_start >= first_at and
                     w.window_start + WINDOW_S <= watermark]  # fmt: skip
            assert len(whole) >= 5
            for window in whole:
                assert window.replica_seconds == pytest.approx(running * WINDOW_S), window
