"""End to end on real Triton replicas behind real HAProxy, all on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from spillover.drivers.haproxy import RuntimeApi
from spillover.drivers.local.errors import StackError
from spillover.drivers.local.replicas import ReplicaFailedError
from spillover.drivers.tritonserver import shm_prefix
from spillover.local.stack import LocalStack
from spillover.model.contract import (
    HISTORY_WINDOW,
    INPUT_HISTORY,
    INPUT_USER_ID,
    MODEL_NAME,
    OUTPUT_ITEM_IDS,
    OUTPUT_SCORES,
    TOP_K,
)
from spillover.serving.batching import pad_histories
from spillover.serving.client import RecommenderClient
from tests.support import free_port_base, processes_with_marker, small_layout

PROTOCOLS = ["http", "grpc"]


def gateway_url(stack: LocalStack, protocol: str) -> str:
    return stack.gateway_endpoints[protocol]


def onnx_answer(model_file: Path, users: list[int], histories: np.ndarray):
    session = onnxruntime.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    return session.run(
        [OUTPUT_ITEM_IDS, OUTPUT_SCORES],
        {INPUT_USER_ID: np.array(users, dtype=np.int64).reshape(-1, 1), INPUT_HISTORY: histories},
    )


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_gateway_serves_what_the_onnx_model_computes(running_stack, model_file, protocol):
    users = [0, 7, 399, 123]
    histories = pad_histories([[], [5, 9, 11], list(range(60)), [1499, 3]])
    with RecommenderClient(gateway_url(running_stack, protocol), protocol) as client:
        answer = client.recommend(users, histories)
    expected_ids, expected_scores = onnx_answer(model_file, users, histories)
    assert answer.item_ids.shape == (4, TOP_K)
    np.testing.assert_array_equal(answer.item_ids, expected_ids)
    np.testing.assert_allclose(answer.scores, expected_scores, rtol=1e-5)
    assert np.all(np.diff(answer.scores, axis=1) <= 0), "scores must come best first"


def _raw_infer(protocol: str, url: str, user: np.ndarray, user_dtype: str, history: np.ndarray):
    module = triton_http if protocol == "http" else triton_grpc
    user_input = module.InferInput(INPUT_USER_ID, list(user.shape), user_dtype)
    user_input.set_data_from_numpy(user)
    history_input = module.InferInput(INPUT_HISTORY, list(history.shape), "INT64")
    history_input.set_data_from_numpy(history)
    client = module.InferenceServerClient(url)
    try:
        return client.infer(MODEL_NAME, [user_input, history_input])
    finally:
        client.close()


BAD_REQUESTS = {
    "user id as float": (np.array([[3.0]], dtype=np.float32), "FP32", pad_histories([[1]])),
    "user id with extra dim": (np.array([[[3]]], dtype=np.int64), "INT64", pad_histories([[1]])),
    "batch larger than max": (
        np.zeros((65, 1), dtype=np.int64),
        "INT64",
        pad_histories([[1]] * 65),
    ),
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("case", list(BAD_REQUESTS), ids=list(BAD_REQUESTS))
def test_malformed_request_gets_clear_error_and_server_keeps_serving(running_stack, protocol, case):
    user, dtype, history = BAD_REQUESTS[case]
    url = gateway_url(running_stack, protocol)
    with pytest.raises(InferenceServerException) as error:
        _raw_infer(protocol, url, user, dtype, history)
    message = str(error.value)
    assert INPUT_USER_ID in message or "batch" in message, message
    with RecommenderClient(url, protocol) as client:
        assert client.recommend([1], [[2, 3]]).item_ids.shape == (1, TOP_K)


def test_unknown_users_get_the_out_of_vocabulary_answer(running_stack, model_file):
    history = [10, 20, 30]
    oov_ids, _ = onnx_answer(model_file, [-1], pad_histories([history]))
    with RecommenderClient(gateway_url(running_stack, "http")) as client:
        unknown = client.recommend([10**9], [history])
        negative = client.recommend([-5], [history])
        known = client.recommend([3], [history])
    np.testing.assert_array_equal(unknown.item_ids, oov_ids)
    np.testing.assert_array_equal(negative.item_ids, oov_ids)
    assert not np.array_equal(unknown.scores, known.scores)


def test_long_history_counts_only_the_most_recent_window(running_stack):
    history = [int(i) for i in np.random.default_rng(1).integers(0, 1500, size=300)]
    url = gateway_url(running_stack, "http")
    with RecommenderClient(url) as client:
        full = client.recommend([4], np.array([history], dtype=np.int64))
        recent = client.recommend([4], np.array([history[-HISTORY_WINDOW:]], dtype=np.int64))
    np.testing.assert_array_equal(full.item_ids, recent.item_ids)


@dataclass
class BackgroundLoad:
    """Bounded request loops (one per protocol) through the gateway, counting outcomes."""

    stack: LocalStack
    max_requests: int = 3000
    max_seconds: float = 60.0
    ok: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> BackgroundLoad:
        for protocol in PROTOCOLS:
            thread = threading.Thread(target=self._loop, args=(protocol,), daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def _loop(self, protocol: str) -> None:
        deadline = time.monotonic() + self.max_seconds
        rng = np.random.default_rng(len(protocol))
        with RecommenderClient(gateway_url(self.stack, protocol), protocol) as client:
            for _ in range(self.max_requests):
                if self.stop.is_set() or time.monotonic() > deadline:
                    return
                try:
                    client.recommend([int(rng.integers(0, 400))], [[int(rng.integers(0, 1500))]])
                    self.ok[protocol] += 1
                except Exception as error:  # counted: the test asserts there are none
                    self.failures.append(f"{protocol}: {error}")

    def wait_for(self, requests: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while sum(self.ok.values()) < requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sum(self.ok.values()) >= requests, f"load stalled at {self.ok}"

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


def _replica_pid(stack: LocalStack, name: str) -> int:
    return next(row.pid for row in stack.status() if row.replica == name)


def test_sigkilled_replica_under_load_loses_no_request(running_stack):
    load = BackgroundLoad(running_stack).start()
    try:
        load.wait_for(100)
        os.killpg(_replica_pid(running_stack, "private-0"), signal.SIGKILL)
        killed_at = time.monotonic()
        gateway = RuntimeApi(running_stack.run_dir.gateway_socket)
        while "private-0" in gateway.ready_servers() and time.monotonic() - killed_at < 10:
            time.sleep(0.05)
        marked_down_after = time.monotonic() - killed_at
        served_before = sum(load.ok.values())
        load.wait_for(served_before + 100)
    finally:
        load.finish()
    assert load.failures == []
    assert marked_down_after < 5, f"gateway took {marked_down_after:.1f} s to mark it down"
    row = next(row for row in running_stack.status() if row.replica == "private-0")
    assert not row.running and not row.ready
    running_stack.scale("private", 1)  # level-triggered: the dead replica is replaced
    private = [row for row in running_stack.status() if row.pool == "private" and row.running]
    assert len(private) == 1 and private[0].ready and private[0].gateway_state == "UP"


def test_scaling_burst_up_and_down_under_load_loses_no_request(running_stack):
    load = BackgroundLoad(running_stack).start()
    try:
        load.wait_for(50)
        running_stack.scale("burst", 2)
        weights = {row.replica: row.weight for row in running_stack.status()}
        assert weights["burst-1"] and weights["burst-1"] > 0, weights
        load.wait_for(sum(load.ok.values()) + 50)
        running_stack.scale("burst", 0)
        load.wait_for(sum(load.ok.values()) + 50)
    finally:
        load.finish()
    assert load.failures == []
    burst = [row for row in running_stack.status() if row.pool == "burst"]
    assert not any(row.running for row in burst)


def test_pool_weights_split_traffic(running_stack):
    running_stack.set_weights({"private": 80, "burst": 20})
    gateway = RuntimeApi(running_stack.run_dir.gateway_socket)

    def by_pool() -> Counter:
        counts: Counter = Counter()
        for row in gateway.server_stats():
            if row.backend == "triton_http":
                counts[row.pool] += row.total_sessions
        return counts

    before = by_pool()
    with RecommenderClient(gateway_url(running_stack, "http")) as client:
        for user in range(400):
            client.recommend([user], [[user]])
    served = by_pool() - before
    # Round robin over weights 80:20 is deterministic to within one cycle.
    assert served["private"] + served["burst"] == 400
    assert abs(served["private"] / 400 - 0.8) < 0.03, served


def test_shares_that_reach_no_ready_replica_are_refused(running_stack):
    with pytest.raises(StackError, match="no pool with a share above 0"):
        running_stack.set_weights({"private": 0, "burst": 0})
    running_stack.scale("burst", 0)
    with pytest.raises(StackError, match="burst=100"):
        running_stack.set_weights({"private": 0, "burst": 100})
    with RecommenderClient(gateway_url(running_stack, "http")) as client:
        assert client.recommend([1], [[2]]).item_ids.shape == (1, TOP_K)  # still served


def test_scale_lets_a_live_replica_left_out_of_the_gateway_join(running_stack):
    gateway = RuntimeApi(running_stack.run_dir.gateway_socket)
    gateway.disable_server("burst-0")  # as if `up` was killed before enabling it
    running_stack.scale("burst", 1)
    row = next(row for row in running_stack.status() if row.replica == "burst-0")
    assert row.gateway_state == "UP" and row.weight


def test_scale_outside_the_pool_limits_is_refused(running_stack):
    with pytest.raises(StackError, match="burst takes 0 to 2 replicas"):
        running_stack.scale("burst", 3)
    with pytest.raises(StackError, match="unknown pool 'gpu'"):
        running_stack.scale("gpu", 1)


def test_down_leaves_no_process_shared_memory_or_socket(tmp_path, model_file):
    stack = LocalStack(tmp_path / "run")
    stack.up(small_layout(), model_file)
    marker = str(stack.run_dir.path)
    assert len(processes_with_marker(marker)) >= 3  # gateway + 2 replicas (+ stubs)
    stack.down()
    assert processes_with_marker(marker) == []
    assert not stack.run_dir.gateway_socket.exists()
    regions = [shm_prefix(name, stack.run_dir.path) for name in ("private-0", "burst-0")]
    assert [p for p in Path("/dev/shm").iterdir() if p.name.startswith(tuple(regions))] == []
    assert stack.run_dir.load() is None


def test_down_stops_everything_after_up_was_killed(tmp_path, model_repo):
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "spillover", "local", "--run-dir", str(run_dir)]
    marker = str(run_dir.resolve())
    up = subprocess.Popen(
        [
            *command,
            "up",
            "--no-controller",
            "--private",
            "1",
            "--burst",
            "1",
            "--max-replicas",
            "2",
            "--port-base",
            str(free_port_base()),
            "--model-repo",
            str(model_repo),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_until_recorded(run_dir / "state.json", replicas=2, timeout_s=60)
        up.kill()  # SIGKILL: no chance to clean up after itself
        up.wait()
        assert processes_with_marker(marker), "the servers should outlive the killed CLI"
        result = subprocess.run([*command, "down"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert processes_with_marker(marker) == []
    finally:
        up.kill()
        up.wait()
        LocalStack(run_dir).down()  # whatever the test's outcome, leave nothing running


def _wait_until_recorded(state_file: Path, replicas: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if state_file.exists() and len(json.loads(state_file.read_text())["replicas"]) == replicas:
            return
        time.sleep(0.05)
    pytest.fail(f"local up never recorded {replicas} replicas in {state_file}")


def test_replica_that_fails_to_start_is_named_with_its_log(tmp_path):
    broken_model = tmp_path / "broken.onnx"
    broken_model.write_bytes(b"this is not an onnx file")
    stack = LocalStack(tmp_path / "run")
    try:
        with pytest.raises(ReplicaFailedError) as error:
            stack.up(small_layout(private=1, burst=0), broken_model, ready_timeout=60)
    finally:
        stack.down()
    assert error.value.replica == "private-0"
    assert "recommender" in str(error.value)  # the log tail names the model that failed
    assert processes_with_marker(str(stack.run_dir.path)) == []


def test_cli_status_and_weights(running_stack):
    command = [
        sys.executable,
        "-m",
        "spillover",
        "local",
        "--run-dir",
        str(running_stack.run_dir.path),
    ]
    weights = subprocess.run(
        [*command, "weights", "private=3", "burst=1"], capture_output=True, text=True, timeout=30
    )
    assert weights.returncode == 0, weights.stderr
    status = subprocess.run([*command, "status"], capture_output=True, text=True, timeout=30)
    assert status.returncode == 0, status.stderr
    lines = {line.split()[1]: line.split() for line in status.stdout.splitlines()[2:]}
    assert lines["private-0"][4] == "yes" and lines["burst-0"][4] == "yes"
    private, burst = int(lines["private-0"][6]), int(lines["burst-0"][6])
    assert abs(private / burst - 3) < 0.05, (private, burst)  # integer weights round
    bad = subprocess.run([*command, "weights", "private=x"], capture_output=True, text=True)
    assert bad.returncode == 2 and "POOL=SHARE" in bad.stderr
