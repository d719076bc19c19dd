"""A moto server on loopback standing in for AWS's endpoints, and clients pointed at it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3

START_TIMEOUT_S = 30.0
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
"""moto accepts any credentials; these only keep botocore from looking for real ones."""


@dataclass(frozen=True)
class MotoServer:
    url: str

    def session(self) -> boto3.Session:
        return boto3.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            aws_session_token="testing",
            region_name="us-east-1",
        )

    def reset(self) -> None:
        self._post("/moto-api/reset", {})

    def queue_cost_and_usage(self, *answers: dict[str, Any]) -> None:
        """Cost Explorer answers, taken one per distinct request (moto's documented hook)."""
        self._post("/moto-api/static/ce/cost-and-usage-results", {"results": list(answers)})

    def _post(self, path: str, body: dict[str, Any]) -> None:
        request = urllib.request.Request(
            self.url + path, data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def moto_server() -> Iterator[MotoServer]:
    """moto's server on 127.0.0.1 at a free port, in its own process group, stopped after."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _listening(port):
            if process.poll() is not None:
                raise RuntimeError(f"moto server exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"moto server not listening on {port} after {START_TIMEOUT_S}s")
            time.sleep(0.1)
        yield MotoServer(f"http://127.0.0.1:{port}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
