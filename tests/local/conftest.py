"""Fixtures for end-to-end tests: a real stack on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from spillover.local.stack import LocalStack
from tests.support import small_layout


@pytest.fixture
def running_stack(tmp_path: Path, model_file: Path) -> Iterator[LocalStack]:
    """1 private + 1 burst replica behind the gateway; always torn down."""
    stack = LocalStack(tmp_path / "run")
    stack.up(small_layout(), model_file, ready_timeout=120)
    try:
        yield stack
    finally:
        stack.down()
