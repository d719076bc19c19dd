"""Precision benchmark: one model at fp32, int8 and fp16, served side by side in one run.

Each precision gets its own local stack with one private replica, all started
before measuring (a replica waiting its turn is idle). The same client sends the
same pre-built requests straight to each replica, in interleaved rounds, so
drift on a noisy machine hits every precision alike. Beside throughput and
latency the table shows what the precision trades: the model's size on disk, the
replica's memory, Recall@20 on the held-out clicks (from the build's
metrics.json), and cost per 1,000 recommendations at the private pool's price,
since a local replica stands for one GPU replica of its pool.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime

from spillover.bench.load import LoadResult
from spillover.bench.rawhttp import triton_requests
from spillover.bench.serving import (
    HOST,
    BenchError,
    ReplicaBenchSettings,
    Setup,
    measure_interleaved,
)
from spillover.controller import triton_metrics
from spillover.controller.scraping import fetch_metrics
from spillover.drivers.local.layout import LocalLayout, LocalPool
from spillover.drivers.processes import group_members
from spillover.drivers.tritonserver import ReplicaPorts
from spillover.local.stack import LocalStack
from spillover.model.build import built_metrics, onnx_path
from spillover.model.contract import (
    INPUT_HISTORY,
    INPUT_USER_ID,
    MAX_BATCH_SIZE,
    OUTPUT_ITEM_IDS,
    TOP_K,
)
from spillover.model.precision import Precision
from spillover.serving.client import RecommenderClient
from spillover.serving.workload import Request, sample_requests
from spillover.tables import format_table

STACK_PORT_SPAN = 20
"""Ports one benchmark stack takes: gateway, then one private and one burst slot."""

ONNX_WARMUP_CALLS, ONNX_TIMED_CALLS = 10, 200
"""Calls per model of the in-process timing: ~2 s per model at 100k items."""

GOAL_RECALL_VS_FP32 = 0.99
GOAL_SIZE_VS_FP32 = 0.30
GOAL_THROUGHPUT_VS_FP32 = 1.5
"""Issue 16's goals for int8 against fp32."""


@dataclass(frozen=True)
class BuiltModel:
    """One precision's build, with what its metrics.json says about it."""

    precision: Precision
    model_path: Path
    onnx_bytes: int
    recall: float
    """Recall@TOP_K of the served graph on the held-out clicks."""
    fp32_recall: float
    """Recall@TOP_K of the fp32 graph it came from, on the same clicks."""
    trained_as: tuple[float, float]
    """(Recall, NDCG) of the fp32 weights before conversion: equal for builds of one model."""

    @classmethod
    def from_repo(cls, repo_dir: Path) -> BuiltModel:
        metrics = built_metrics(repo_dir)
        precision = metrics["precision"]
        return cls(
            precision=Precision(precision["name"]),
            model_path=onnx_path(repo_dir),
            onnx_bytes=int(precision["onnx_bytes"]),
            recall=float(precision["served"]["recall"]),
            fp32_recall=float(precision["fp32"]["recall"]),
            trained_as=(float(metrics["model"]["recall"]), float(metrics["model"]["ndcg"])),
        )


@dataclass(frozen=True, kw_only=True)
class PrecisionBenchConfig(ReplicaBenchSettings):
    """How the precision benchmark runs."""

    models: tuple[BuiltModel, ...]
    """One build per precision, of the same trained model, in table order."""
    usd_per_replica_hour: float
    """The private pool's price of one replica (one GPU), from its config."""


@dataclass(frozen=True)
class PrecisionResult:
    """What one precision's replica did under the benchmark's load."""

    model: BuiltModel
    load: LoadResult
    replica_rss_bytes: int
    """Resident memory of the replica after its load: tritonserver and its backend
    stubs (shared libraries count once per process, as RSS does)."""
    busy_capacity_rps: float | None
    """Requests per second the replica would serve fully busy, from Triton's busy time
    over the benchmark: what the controller learns for a pool of these replicas."""
    onnx_batch_ms: float
    """ONNX Runtime alone on a batch of MAX_BATCH_SIZE requests, in the benchmark's
    process, with the replica's threads per call: the model's own speed."""

    def usd_per_1000(self, usd_per_replica_hour: float) -> float:
        """The replica's hourly price over the recommendations it serves in an hour."""
        per_hour = self.load.throughput * 3600.0
        return usd_per_replica_hour / per_hour * 1000.0 if per_hour else float("nan")


@dataclass(frozen=True)
class _Replica:
    """One precision's running replica, as the benchmark reaches it."""

    model: BuiltModel
    stack: LocalStack
    ports: ReplicaPorts


def run_precision_bench(config: PrecisionBenchConfig) -> list[PrecisionResult]:
    _check_one_model(config.models)
    requests = sample_requests(config.n_users, config.n_items, count=4096, seed=7)
    batch_ms = _onnx_batch_ms(config.models, requests, config.model_threads)
    replicas: list[_Replica] = []
    try:
        for index, model in enumerate(config.models):
            replicas.append(_start_replica(model, index, config))
        for replica in replicas:
            _check_serves_its_file(replica, requests[:8])
        setups: list[Setup] = [
            (str(r.model.precision), r.ports.http, triton_requests(HOST, r.ports.http, requests),
             config.concurrency)
            for r in replicas
        ]  # fmt: skip
        before = [_counters(replica) for replica in replicas]
        started = time.monotonic()
        loads = measure_interleaved(setups, config)
        seconds = time.monotonic() - started
        return [
            PrecisionResult(
                replica.model,
                load,
                _replica_rss_bytes(replica.stack),
                _busy_capacity(first, _counters(replica), seconds, config.model_instances),
                model_ms,
            )
            for replica, load, first, model_ms in zip(
                replicas, loads, before, batch_ms, strict=True
            )
        ]
    finally:
        for replica in replicas:
            replica.stack.down()


def _start_replica(model: BuiltModel, index: int, config: PrecisionBenchConfig) -> _Replica:
    """A stack of its own (gateway unused) with one private replica serving ``model``."""
    stack = LocalStack(config.work_dir / f"stack-{model.precision}")
    layout = LocalLayout(
        (LocalPool("private", 1, 1), LocalPool("burst", 0, 1)),
        config.port_base + index * STACK_PORT_SPAN,
    )
    stack.up(
        layout,
        model.model_path,
        model_instances=config.model_instances,
        model_threads=config.model_threads,
    )
    return _Replica(model, stack, layout.slots[0].ports)


def _onnx_batch_ms(
    models: tuple[BuiltModel, ...], requests: list[Request], threads: int
) -> list[float]:
    """Median milliseconds of one ONNX Runtime call on a full batch, per model.

    The models take turns call by call, so a busy moment on the machine lands on all.
    """
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    sessions = [
        onnxruntime.InferenceSession(
            str(model.model_path), options, providers=["CPUExecutionProvider"]
        )
        for model in models
    ]
    batch = requests[:MAX_BATCH_SIZE]
    feed = {
        INPUT_USER_ID: np.vstack([request.user_ids for request in batch]),
        INPUT_HISTORY: np.vstack([request.histories for request in batch]),
    }
    timings: list[list[float]] = [[] for _ in sessions]
    for call in range(ONNX_WARMUP_CALLS + ONNX_TIMED_CALLS):
        for session, times in zip(sessions, timings, strict=True):
            started = time.perf_counter()
            session.run([OUTPUT_ITEM_IDS], feed)
            if call >= ONNX_WARMUP_CALLS:
                times.append(time.perf_counter() - started)
    return [float(np.median(times) * 1000.0) for times in timings]


def _counters(replica: _Replica) -> triton_metrics.TritonCounters:
    url = f"http://{HOST}:{replica.ports.metrics}/metrics"
    return triton_metrics.parse_counters(fetch_metrics(url, timeout_s=5.0))


def _busy_capacity(
    before: triton_metrics.TritonCounters,
    after: triton_metrics.TritonCounters,
    seconds: float,
    model_instances: int,
) -> float | None:
    """The service rate the controller would learn from these two scrapes."""
    interval = triton_metrics.interval(before, after, seconds)
    if interval is None:
        return None
    return triton_metrics.pool_traffic([interval], model_instances).service_rate_rps


def _check_one_model(models: tuple[BuiltModel, ...]) -> None:
    """Builds of different weights would compare training runs, not precisions."""
    trained = {model.trained_as for model in models}
    if len(trained) != 1:
        described = ", ".join(f"{model.precision}: {model.trained_as}" for model in models)
        raise BenchError(
            f"the builds were trained differently (fp32 Recall, NDCG per build: {described}); "
            "rebuild them with the same settings"
        )


def _check_serves_its_file(replica: _Replica, requests: list[Request]) -> None:
    """The replica must answer like its own ONNX file, or the row is another precision's."""
    model, port = replica.model, replica.ports.http
    session = onnxruntime.InferenceSession(
        str(model.model_path), providers=["CPUExecutionProvider"]
    )
    with RecommenderClient(f"{HOST}:{port}") as client:
        for request in requests:
            served = client.recommend(request.user_ids.ravel().tolist(), request.histories)
            [expected] = session.run(
                [OUTPUT_ITEM_IDS],
                {INPUT_USER_ID: request.user_ids, INPUT_HISTORY: request.histories},
            )
            if not np.array_equal(served.item_ids, expected):
                raise BenchError(
                    f"the {model.precision} replica on port {port} answers user "
                    f"{int(request.user_ids[0, 0])} with {served.item_ids[0].tolist()}, "
                    f"its file {model.model_path} with {expected[0].tolist()}"
                )


def _replica_rss_bytes(stack: LocalStack) -> int:
    _, records = stack.replica_records()
    return sum(_rss_bytes(pid) for record in records for pid in group_members(record.pid))


def _rss_bytes(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # exited since it was listed
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def report(results: list[PrecisionResult], usd_per_replica_hour: float) -> str:
    """The side-by-side table, and int8 against the issue's goals when both were run."""
    by_precision = {result.model.precision: result for result in results}
    fp32 = by_precision.get(Precision.FP32)
    headers = [
        "precision", "model MB", "vs fp32", f"Recall@{TOP_K}", "vs fp32", "ok", "failed",
        "req/s", "vs fp32", "p50 ms", "p99 ms", "busy-time rps", f"model ms/{MAX_BATCH_SIZE}",
        "replica RSS MB", "$ per 1k recs",
    ]  # fmt: skip
    rows = [
        [
            str(result.model.precision),
            f"{result.model.onnx_bytes / 1e6:.1f}",
            _versus(result.model.onnx_bytes, fp32.model.onnx_bytes if fp32 else None, "{:.0%}"),
            f"{result.model.recall:.4f}",
            _versus(result.model.recall, result.model.fp32_recall, "{:.1%}"),
            result.load.ok,
            len(result.load.failures),
            f"{result.load.throughput:.0f}",
            _versus(result.load.throughput, fp32.load.throughput if fp32 else None, "{:.2f}x"),
            f"{result.load.percentile_ms(50):.2f}",
            f"{result.load.percentile_ms(99):.2f}",
            "-" if result.busy_capacity_rps is None else f"{result.busy_capacity_rps:.0f}",
            f"{result.onnx_batch_ms:.2f}",
            f"{result.replica_rss_bytes / 1e6:.0f}",
            f"{result.usd_per_1000(usd_per_replica_hour):.6f}",
        ]
        for result in results
    ]
    lines = [format_table(headers, rows)]
    int8 = by_precision.get(Precision.INT8)
    if int8 is not None and fp32 is not None:
        lines += ["", _int8_goals(int8, fp32), *_model_speed_lines(int8, fp32)]
    return "\n".join(lines)


def _model_speed_lines(int8: PrecisionResult, fp32: PrecisionResult) -> list[str]:
    """How much faster the model itself got, beside how much faster the replica got."""
    lines = [
        f"the model alone (ONNX Runtime, batch of {MAX_BATCH_SIZE}): int8 "
        f"{int8.onnx_batch_ms:.2f} ms vs fp32 {fp32.onnx_batch_ms:.2f} ms per call, "
        f"{fp32.onnx_batch_ms / int8.onnx_batch_ms:.2f}x; the rest of a request's cost "
        "(HTTP, the Python backend, the load generator on the same cores) stays as it was"
    ]
    if int8.busy_capacity_rps and fp32.busy_capacity_rps:
        lines.append(
            f"Triton busy time: int8 serves "
            f"{int8.busy_capacity_rps / fp32.busy_capacity_rps:.2f}x fp32's requests per busy "
            "second (the capacity the controller learns)"
        )
    return lines


def _int8_goals(int8: PrecisionResult, fp32: PrecisionResult) -> str:
    recall = int8.model.recall / int8.model.fp32_recall
    size = int8.model.onnx_bytes / fp32.model.onnx_bytes
    speed = int8.load.throughput / fp32.load.throughput if fp32.load.throughput else float("nan")
    return (
        f"int8 vs fp32: Recall@{TOP_K} {recall:.1%} (goal >= {GOAL_RECALL_VS_FP32:.0%}), "
        f"size {size:.0%} (goal <= {GOAL_SIZE_VS_FP32:.0%}), "
        f"req/s {speed:.2f}x (goal >= {GOAL_THROUGHPUT_VS_FP32}x)"
    )


def _versus(value: float, fp32_value: float | None, style: str) -> str:
    return style.format(value / fp32_value) if fp32_value else "-"
