"""Helpers for tests that start real servers: free loopback ports, process checks."""

from __future__ import annotations

import importlib.util
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import numpy as np

from spillover.drivers.local.layout import (
    FIRST_REPLICA_OFFSET,
    PORTS_PER_REPLICA,
    LocalLayout,
    LocalPool,
)
from spillover.local.stack import LocalStack
from spillover.serving.client import RecommenderClient

MAX_REPLICAS = 2
SCRIPTS_DIR = Path(__file__).resolve().parents[1] / "scripts"


def load_script(filename: str) -> ModuleType:
    """A module from scripts/ (their names have dashes, so they cannot be imported)."""
    spec = importlib.util.spec_from_file_location(
        filename.removesuffix(".py").replace("-", "_"), SCRIPTS_DIR / filename
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ports_free(first: int, count: int) -> bool:
    for port in range(first, first + count):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port_base(slots: int = 2 * MAX_REPLICAS) -> int:
    """A port base whose gateway and replica ports are all free right now."""
    span = FIRST_REPLICA_OFFSET + PORTS_PER_REPLICA * slots
    for _ in range(200):
        base = random.randrange(20000, 60000 - span)
        if _ports_free(base, span):
            return base
    raise RuntimeError("no free loopback port range found")


def small_layout(private: int = 1, burst: int = 1) -> LocalLayout:
    return LocalLayout(
        (LocalPool("private", private, MAX_REPLICAS), LocalPool("burst", burst, MAX_REPLICAS)),
        port_base=free_port_base(),
    )


@contextmanager
def running_local_stack(
    run_dir: Path, model_file: Path, private: int = 1, burst: int = 1
) -> Iterator[LocalStack]:
    """A real local stack (Triton replicas, gateway) on free ports; always torn down."""
    stack = LocalStack(run_dir)
    stack.up(small_layout(private=private, burst=burst), model_file, ready_timeout=120)
    try:
        yield stack
    finally:
        stack.down()


def processes_with_marker(marker: str) -> list[int]:
    """Every live process whose command line mentions marker (e.g. a run directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:  # it exited while we looked
            continue
    return found


class PacedLoad:
    """Open-loop requests at a set rate from a few threads, counting failures."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sent = self.failed = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._local = threading.local()

    def run(self, rate: float, until: Callable[[], bool], max_seconds: float) -> bool:
        """Send at `rate` until `until()` holds (checked each second); False on timeout."""
        deadline = time.monotonic() + max_seconds
        next_check = time.monotonic() + 1
        with ThreadPoolExecutor(max_workers=8) as workers:
            start = time.monotonic()
            sent_here = 0
            while time.monotonic() < deadline:
                if time.monotonic() >= next_check:
                    if until():
                        return True
                    next_check += 1
                due = start + sent_here / rate
                time.sleep(max(0.0, due - time.monotonic()))
                workers.submit(self._one, sent_here)
                sent_here += 1
        return False

    def _one(self, index: int) -> None:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = RecommenderClient(self.url, "http")
        history = np.array([[index % 50, (index * 7) % 50]], dtype=np.int64)
        try:
            client.recommend([index % 100], history)
            ok, error = True, ""
        except Exception as exc:  # every failure counts, whatever its kind
            ok, error = False, repr(exc)
        with self._lock:
            self.sent += 1
            if not ok:
                self.failed += 1
                self.errors.append(error)
