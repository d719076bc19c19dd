"""Triton readiness probes never raise: whatever answers, or fails to, is "not ready"."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from spillover.drivers.tritonserver import is_ready
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
