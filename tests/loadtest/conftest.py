"""Fixtures shared by the load test tests: a real local stack, started once per module,
and a stand-in Triton replica (fake_http_triton.py) in a process of its own."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from spillover.local.stack import LocalStack
from tests.support import running_local_stack

FAKE_SERVER = Path(__file__).with_name("fake_http_triton.py")
START_TIMEOUT_S = 15.0


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory, model_file: Path) -> Iterator[LocalStack]:
    """1 private + 1 burst real Triton replica behind the gateway, on free ports, shared
    by one module's tests (starting Triton costs seconds); always torn down."""
    with running_local_stack(tmp_path_factory.mktemp("stack") / "run", model_file) as stack:
        yield stack


class FakeTriton:
    """Drives fake_http_triton.py, a stand-in replica in a process of its own."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, str(FAKE_SERVER)],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,  # stopped by process group, whatever it started
        )
        assert self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], START_TIMEOUT_S)
        line = self._process.stdout.readline() if ready else ""
        if not line:
            self.close()
            raise RuntimeError(f"{FAKE_SERVER.name} did not start")
        self.url = f"127.0.0.1:{json.loads(line)['port']}"

    def behave(
        self, delay_s: float = 0.0, status: int = 200, stall: tuple[float, float] | None = None
    ) -> None:
        settings = {"delay_s": delay_s, "status": status, "stall": stall}
        request = urllib.request.Request(
            f"http://{self.url}/control", json.dumps(settings).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=5):
            pass

    @property
    def received(self) -> list[float]:
        with urllib.request.urlopen(f"http://{self.url}/received", timeout=5) as response:
            return list(json.loads(response.read()))

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait(timeout=10)
        if self._process.stdout is not None:
            self._process.stdout.close()


@pytest.fixture
def fake_triton() -> Iterator[FakeTriton]:
    server = FakeTriton()
    try:
        yield server
    finally:
        server.close()
