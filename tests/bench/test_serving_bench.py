"""The serving benchmark runs end to end: both setups agree and every request succeeds."""

from __future__ import annotations

from spillover.bench.serving import (
    DIRECT,
    DIRECT_ONE,
    FLASK,
    GATEWAY,
    GATEWAY_ONE,
    ServingBenchConfig,
    report,
    run_serving_bench,
)
from tests.support import free_port_base, processes_with_marker


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
