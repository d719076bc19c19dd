"""The precision benchmark: every precision served side by side, priced, and checked first."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from spillover.bench.cli import register
from spillover.bench.load import LoadResult
from spillover.bench.precision import (
    STACK_PORT_SPAN,
    BuiltModel,
    PrecisionBenchConfig,
    PrecisionResult,
    report,
    run_precision_bench,
)
from spillover.bench.serving import BenchError
from spillover.drivers.local.layout import FIRST_REPLICA_OFFSET, PORTS_PER_REPLICA
from spillover.model.build import model_sizes
from spillover.model.precision import Precision
from tests.support import free_port_base, processes_with_marker

ORDER = (Precision.FP32, Precision.INT8, Precision.FP16)


def _bench_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="spillover")
    register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["bench", "serving", *argv])


def test_precision_list_is_read_in_the_order_given() -> None:
    assert _bench_args(["--precision", "fp32,int8,fp16"]).precision == ORDER
    assert _bench_args([]).precision is None, "without it, the Triton vs Flask benchmark runs"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("fp32,int4", "unknown precision 'int4'", id="unknown"),
        pytest.param("int8,int8", "each precision once", id="twice"),
        pytest.param("", "unknown precision ''", id="empty"),
    ],
)
def test_bad_precision_lists_are_refused_naming_the_flag(
    value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        _bench_args(["--precision", value])
    assert f"argument --precision: {message}" in capsys.readouterr().err


def _result(
    precision: Precision,
    megabytes: float,
    recall: float,
    count: int,
    busy_rps: float = 5000.0,
    model_ms: float = 10.0,
) -> PrecisionResult:
    """A made-up result: fp32's Recall 0.25, `count` requests served in 10 s."""
    model = BuiltModel(
        precision, Path(f"{precision}.onnx"), int(megabytes * 1e6), recall, 0.25, (0.25, 0.13)
    )
    load = LoadResult(str(precision), 32, elapsed_s=10.0, latencies_s=[0.01] * count)
    return PrecisionResult(
        model,
        load,
        replica_rss_bytes=300_000_000,
        busy_capacity_rps=busy_rps,
        onnx_batch_ms=model_ms,
    )


def test_report_prices_each_precision_and_states_int8_against_the_goals() -> None:
    results = [
        _result(Precision.FP32, 27.0, 0.25, 20_000),
        _result(Precision.INT8, 7.5, 0.2495, 28_000, busy_rps=8500.0, model_ms=6.25),
    ]
    # 2,000 vs 2,800 req/s at $3.60 per replica-hour: $0.0005 and $0.000357 per 1,000.
    assert results[0].usd_per_1000(3.6) == pytest.approx(0.0005)
    text = report(results, usd_per_replica_hour=3.6)
    assert "0.000500" in text and "0.000357" in text and "1.40x" in text and "28%" in text
    goals, model_alone, busy = text.splitlines()[-3:]
    assert goals == (
        "int8 vs fp32: Recall@20 99.8% (goal >= 99%), size 28% (goal <= 30%), "
        "req/s 1.40x (goal >= 1.5x)"
    )
    assert model_alone.startswith(
        "the model alone (ONNX Runtime, batch of 64): int8 6.25 ms vs fp32 10.00 ms per call, 1.60x"
    )
    assert busy.startswith("Triton busy time: int8 serves 1.70x fp32's requests per busy second")


def test_builds_of_different_training_runs_are_refused_before_anything_starts(
    tmp_path: Path,
) -> None:
    fp32 = _result(Precision.FP32, 27.0, 0.25, 1).model
    int8 = replace(_result(Precision.INT8, 7.5, 0.25, 1).model, trained_as=(0.3, 0.1))
    config = PrecisionBenchConfig(
        models=(fp32, int8), usd_per_replica_hour=1.0, n_users=10, n_items=100, work_dir=tmp_path
    )
    with pytest.raises(BenchError, match="trained differently"):
        run_precision_bench(config)
    assert not any(tmp_path.iterdir()), "no stack was started"


def test_short_precision_bench_serves_every_precision(
    tmp_path: Path, model_repo_at: Callable[[Precision], Path]
) -> None:
    repos = [model_repo_at(precision) for precision in ORDER]
    n_users, n_items = model_sizes(repos[0])
    # Three stacks, STACK_PORT_SPAN ports apart, in one free range.
    slots = -(-(len(ORDER) * STACK_PORT_SPAN - FIRST_REPLICA_OFFSET) // PORTS_PER_REPLICA)
    config = PrecisionBenchConfig(
        models=tuple(BuiltModel.from_repo(repo) for repo in repos),
        usd_per_replica_hour=2.0,
        n_users=n_users,
        n_items=n_items,
        work_dir=tmp_path,
        concurrency=4,
        duration_s=1.0,
        rounds=1,
        warmup_s=0.2,
        model_instances=1,
        port_base=free_port_base(slots=slots),
    )
    results = run_precision_bench(config)
    assert [result.model.precision for result in results] == list(ORDER)
    for result in results:
        assert result.load.failures == [] and result.load.ok > 10, result.model.precision
        assert result.replica_rss_bytes > 50_000_000, "tritonserver and its stub, resident"
        assert result.busy_capacity_rps and result.busy_capacity_rps > result.load.throughput
    sizes = {result.model.precision: result.model.onnx_bytes for result in results}
    assert sizes[Precision.INT8] < sizes[Precision.FP16] < sizes[Precision.FP32]
    text = report(results, config.usd_per_replica_hour)
    assert "int8 vs fp32: Recall@20 " in text and "Triton busy time: int8 serves" in text
    assert all(result.onnx_batch_ms > 0 for result in results)
    assert processes_with_marker(str(tmp_path)) == []  # every replica and gateway stopped
