"""A real local replica held to its declared capacity saturates there, and the
controller's reading of Triton's busy time learns that capacity."""

from __future__ import annotations

from pathlib import Path

import pytest

from spillover.bench.capacity import CapacityBenchConfig, report, run_capacity_bench
from spillover.model.build import model_sizes
from tests.support import free_port_base

DECLARED_RPS = 120.0


def test_a_replica_offered_twice_its_capacity_serves_its_capacity_and_queues(
    tmp_path: Path, model_repo: Path, model_file: Path
) -> None:
    n_users, n_items = model_sizes(model_repo)
    config = CapacityBenchConfig(
        model_path=model_file,
        n_users=n_users,
        n_items=n_items,
        work_dir=tmp_path,
        capacity_rps=DECLARED_RPS,
        multiples=(0.5, 2.0),
        step_s=5.0,
        port_base=free_port_base(),
    )
    light, overloaded = run_capacity_bench(config)
    print(report([light, overloaded], DECLARED_RPS))
    assert not light.load.failures and not overloaded.load.failures
    assert overloaded.load.throughput == pytest.approx(DECLARED_RPS, rel=0.10)
    assert overloaded.queue_ms > 5 * light.queue_ms
    assert overloaded.learned_rps == pytest.approx(DECLARED_RPS, rel=0.15)
