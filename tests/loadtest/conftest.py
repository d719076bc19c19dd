"""Fixtures shared by the load test tests: a real local stack, started once per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from spillover.local.stack import LocalStack
from tests.support import small_layout


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory, model_file: Path) -> Iterator[LocalStack]:
    """1 private + 1 burst real Triton replica behind the gateway, on free ports, shared
    by one module's tests (starting Triton costs seconds); always torn down."""
    stack = LocalStack(tmp_path_factory.mktemp("stack") / "run")
    stack.up(small_layout(private=1, burst=1), model_file, ready_timeout=120)
    try:
        yield stack
    finally:
        stack.down()
