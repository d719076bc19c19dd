"""Fixtures for end-to-end tests: a small real model, free loopback ports, a real stack."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from spillover.drivers.processes import is_running
from spillover.local.layout import FIRST_REPLICA_OFFSET, PORTS_PER_REPLICA, LocalLayout, LocalPool
from spillover.local.stack import LocalStack
from spillover.model.build import build_model, onnx_path
from spillover.model.synth import SynthConfig
from spillover.model.train import TrainConfig

SMALL_MODEL = SynthConfig(n_users=400, n_items=1500, n_categories=8)
MAX_REPLICAS = 2


@pytest.fixture(scope="session")
def model_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("model_repo")
    build_model(repo, SMALL_MODEL, TrainConfig(epochs=2))
    return repo


@pytest.fixture(scope="session")
def model_file(model_repo: Path) -> Path:
    return onnx_path(model_repo)


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


def processes_with_marker(marker: str) -> list[int]:
    """Every live process whose command line mentions marker (the run directory)."""
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and is_running(int(entry.name), marker)
    ]


@pytest.fixture
def running_stack(tmp_path: Path, model_file: Path) -> Iterator[LocalStack]:
    """1 private + 1 burst replica behind the gateway; always torn down."""
    stack = LocalStack(tmp_path / "run")
    stack.up(small_layout(), model_file, ready_timeout=120)
    try:
        yield stack
    finally:
        stack.down()
