"""The serving benchmark runs end to end: both setups agree and every request succeeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from spillover.bench import serving
from spillover.bench.load import LoadResult
from spillover.bench.serving import (
    DIRECT,
    DIRECT_ONE,
    FLASK,
    GATEWAY,
    GATEWAY_ONE,
    ReplicaBenchSettings,
    ServingBenchConfig,
    measure_interleaved,
    report,
    run_serving_bench,
)
from tests.support import free_port_base, processes_with_marker


def test_each_round_starts_one_setup_further_along(monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []

    async def measure(label: str, port: int, built: list[bytes], concurrency: int, config):
        order.append(label)
        return LoadResult(label, concurrency, elapsed_s=1.0, latencies_s=[0.001] * port)

    monkeypatch.setattr(serving, "_measure", measure)
    setups = [("a", 1, [], 4), ("b", 2, [], 4), ("c", 3, [], 4)]
    settings = ReplicaBenchSettings(n_users=1, n_items=1, work_dir=Path("."), rounds=3)
    results = measure_interleaved(setups, settings)
    assert order == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert [(r.label, r.ok, r.elapsed_s) for r in results] == [
        ("a", 3, 3.0), ("b", 6, 3.0), ("c", 9, 3.0)
    ]  # fmt: skip


def test_short_serving_bench_compares_agreeing_setups(tmp_path, model_file):
    config = ServingBenchConfig(
        model_path=model_file,
        n_users=400,
        n_items=1500,
        work_dir=tmp_path,
        concurrency=4,
        duration_s=1.0,
        rounds=1,
        warmup_s=0.2,
        port_base=free_port_base(slots=2),
    )
    results = run_serving_bench(config)
    labels = [result.label for result in results]
    assert labels == [GATEWAY, FLASK, DIRECT, GATEWAY_ONE, DIRECT_ONE]
    for result in results:
        assert result.failures == [] and result.ok > 10, result.label
        assert 0 < result.client_cpu_share < 2
    text = report(results)
    assert "(a/b) Triton+batching vs Flask" in text and "(c) gateway vs direct" in text
    assert processes_with_marker(str(tmp_path)) == []  # replicas and gateway
    assert processes_with_marker(f"--port={config.port_base + 9}") == []  # the Flask baseline
