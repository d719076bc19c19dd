"""Fixtures for end-to-end tests: a real stack on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from spillover.local.stack import LocalStack
from tests.support import running_local_stack


@pytest.fixture
def running_stack(tmp_path: Path, model_file: Path) -> Iterator[LocalStack]:
    """1 private + 1 burst replica behind the gateway; always torn down."""
    with running_local_stack(tmp_path / "run", model_file) as stack:
        yield stack
