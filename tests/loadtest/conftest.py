"""Fixtures shared by the load test tests: a real local stack, started once per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from spillover.local.stack import LocalStack
from tests.support import running_local_stack


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory, model_file: Path) -> Iterator[LocalStack]:
    """1 private + 1 burst real Triton replica behind the gateway, on free ports, shared
    by one module's tests (starting Triton costs seconds); always torn down."""
    with running_local_stack(tmp_path_factory.mktemp("stack") / "run", model_file) as stack:
        yield stack
