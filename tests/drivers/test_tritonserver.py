"""Triton readiness probes never raise: whatever answers, or fails to, is "not ready";
and the environment a replica starts in."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from spillover.drivers.tritonserver import TritonInstall, is_ready, server_environment
from spillover.model.contract import CAPACITY_VARIABLE
from tests.drivers.gateway_harness import free_port


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A port that answers each request with the request itself: what a probe reads when
    its socket was given the very port it dials and connected to itself, as one CI run
    saw while a replica that failed to start left its port free."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)

    def echo_once() -> None:
        try:
            connection, _ = listener.accept()
        except OSError:
            return
        with connection:
            connection.sendall(connection.recv(65536))

    thread = threading.Thread(target=echo_once, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        thread.join(5)


def test_a_probe_that_reads_its_own_request_back_is_not_ready(echo_port: int):
    assert is_ready(echo_port) is False


def test_nothing_listening_is_not_ready():
    assert is_ready(free_port()) is False


@pytest.mark.parametrize(
    ("capacity", "expected"), [(300.0, "300.0"), (None, None)], ids=["pool-capacity", "uncapped"]
)
def test_a_replica_learns_its_pools_capacity_from_its_environment(
    monkeypatch: pytest.MonkeyPatch, capacity: float | None, expected: str | None
) -> None:
    monkeypatch.setenv(CAPACITY_VARIABLE, "999")  # the caller's shell never decides
    install = TritonInstall(*(Path("/nonexistent"),) * 4)
    assert server_environment(install, capacity).get(CAPACITY_VARIABLE) == expected
