"""Capacity benchmark: does a local replica serve like the GPU replica it stands for?

One real replica, held to a declared capacity (SPILLOVER_CAPACITY_RPS, as its pool's
capacity_rps sets it), is offered 0.5x, 1x and 2x that capacity open loop (arrivals
don't wait for answers). Beside the served rate and p99 it prints what Triton saw: the
queue time per request, and the capacity the controller learns from busy time, both
from /metrics (what the controller reads) and from Triton's per-batch statistics (each
execution's time counted once, exact when batch sizes mix).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from spillover.bench.load import LoadResult
from spillover.bench.rawhttp import pooled_sender, triton_requests
from spillover.bench.serving import HOST, BenchError
from spillover.controller import triton_metrics
from spillover.controller.scraping import fetch_metrics
from spillover.drivers.local.layout import LocalLayout, LocalPool
from spillover.drivers.tritonserver import ReplicaPorts
from spillover.local.stack import LocalStack
from spillover.model.contract import MODEL_NAME
from spillover.serving.workload import sample_requests
from spillover.tables import format_table

DRAIN_S = 2.0
"""Pause between steps, so one step's queue never spills into the next's figures."""


@dataclass(frozen=True, kw_only=True)
class CapacityBenchConfig:
    """How the capacity benchmark runs."""

    model_path: Path
    n_users: int
    n_items: int
    work_dir: Path
    capacity_rps: float = 300.0
    """The replica's declared capacity (the packaged private pool's)."""
    multiples: tuple[float, ...] = (0.5, 1.0, 2.0)
    """Offered load per step, as multiples of capacity_rps."""
    step_s: float = 12.0
    """Measured seconds per step."""
    warmup_s: float = 2.0
    """Load at 0.5x before the first step: model warm-up stays out of the figures."""
    connections: int = 64
    """Keep-alive connections: requests in flight at most, so Triton's queue can hold
    up to this many; arrivals beyond wait in the client, and their wait counts."""
    port_base: int = 9300


@dataclass(frozen=True)
class CapacityStep:
    """What one offered rate measured."""

    offered_rps: float
    load: LoadResult
    queue_ms: float
    """Triton's queue time per successful request over the step."""
    learned_rps: float | None
    """The controller's learned capacity from /metrics (pool_traffic)."""
    per_batch_rps: float | None
    """Requests per busy second from Triton's per-batch statistics."""


def run_capacity_bench(config: CapacityBenchConfig) -> list[CapacityStep]:
    layout = LocalLayout(
        (
            LocalPool("private", 1, 1, capacity_rps=config.capacity_rps),
            LocalPool("burst", 0, 1),
        ),
        config.port_base,
    )
    stack = LocalStack(config.work_dir / "stack-capacity")
    # One model instance: a replica stands for one GPU running one batch at a time.
    stack.up(layout, config.model_path, model_instances=1, model_threads=1)
    try:
        ports = layout.slots[0].ports
        requests = sample_requests(config.n_users, config.n_items, count=4096, seed=11)
        built = triton_requests(HOST, ports.http, requests)
        rate = config.capacity_rps * config.multiples[0]
        asyncio.run(offer(built, rate, config.warmup_s, config.connections, ports.http))
        time.sleep(DRAIN_S)
        steps = []
        for multiple in config.multiples:
            steps.append(_step(built, config.capacity_rps * multiple, ports, config))
            time.sleep(DRAIN_S)
        return steps
    finally:
        stack.down()


def _step(
    built: list[bytes], offered_rps: float, ports: ReplicaPorts, config: CapacityBenchConfig
) -> CapacityStep:
    counters_before, busy_before = _counters(ports), _per_batch_busy(ports)
    started = time.monotonic()
    load = asyncio.run(offer(built, offered_rps, config.step_s, config.connections, ports.http))
    seconds = time.monotonic() - started
    counters_after, busy_after = _counters(ports), _per_batch_busy(ports)
    measured = triton_metrics.interval(counters_before, counters_after, seconds)
    if measured is None:
        raise BenchError("the replica restarted during the benchmark; its figures mean nothing")
    traffic = triton_metrics.pool_traffic([measured], model_instances=1)
    busy_s = busy_after[0] - busy_before[0]
    executed = busy_after[1] - busy_before[1]
    return CapacityStep(
        offered_rps,
        load,
        traffic.queue_time_ms,
        traffic.service_rate_rps,
        executed / busy_s if busy_s > 0 else None,
    )


async def offer(
    built: list[bytes], rate_rps: float, duration_s: float, connections: int, port: int
) -> LoadResult:
    """Send at `rate_rps` for `duration_s`, each request at its scheduled time whatever
    came back; latency counts from that time. Answers still missing at the end are
    neither served nor failed: the rate counts what came back within the window."""
    send, pool = await pooled_sender(HOST, port, built, connections)
    result = LoadResult(f"{rate_rps:.0f} rps offered", connections)
    start = time.perf_counter()

    async def one(index: int, scheduled: float) -> None:
        try:
            await send(index)
        except Exception as error:  # a failed request is a measurement, not a crash
            result.failures.append(f"{type(error).__name__}: {error}")
            return
        if time.perf_counter() - start <= duration_s:
            result.latencies_s.append(time.perf_counter() - scheduled)

    tasks = []
    total = int(rate_rps * duration_s)
    for index in range(total):
        scheduled = start + index / rate_rps
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index, scheduled)))
    await asyncio.sleep(max(0.0, start + duration_s - time.perf_counter()))
    result.elapsed_s = time.perf_counter() - start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await pool.close()
    return result


def _counters(ports: ReplicaPorts) -> triton_metrics.TritonCounters:
    url = f"http://{HOST}:{ports.metrics}/metrics"
    return triton_metrics.parse_counters(fetch_metrics(url, timeout_s=5.0))


def _per_batch_busy(ports: ReplicaPorts) -> tuple[float, float]:
    """(busy seconds, requests executed) so far from Triton's statistics extension, where
    each batch size's compute time is summed once per execution, not once per request."""
    url = f"http://{HOST}:{ports.http}/v2/models/{MODEL_NAME}/stats"
    with urllib.request.urlopen(url, timeout=5.0) as response:
        stats = json.loads(response.read())
    busy_ns = rows = 0.0
    for model in stats["model_stats"]:
        for batch in model.get("batch_stats", []):
            phases = ("compute_input", "compute_infer", "compute_output")
            busy_ns += sum(float(batch[phase]["ns"]) for phase in phases)
            rows += float(batch["batch_size"]) * float(batch["compute_infer"]["count"])
    return busy_ns / 1e9, rows


def report(steps: list[CapacityStep], capacity_rps: float) -> str:
    headers = [
        "offered",
        "offered req/s",
        "served req/s",
        "served vs capacity",
        "p99 ms",
        "Triton queue ms",
        "learned req/s (/metrics)",
        "learned vs declared",
        "learned req/s (per batch)",
        "per batch vs declared",
    ]
    rows = [
        [
            f"{step.offered_rps / capacity_rps:.1f}x",
            round(step.offered_rps),
            round(step.load.throughput, 1),
            f"{step.load.throughput / capacity_rps - 1:+.1%}",
            round(step.load.percentile_ms(99), 1),
            round(step.queue_ms, 1),
            _rate(step.learned_rps),
            _versus(step.learned_rps, capacity_rps),
            _rate(step.per_batch_rps),
            _versus(step.per_batch_rps, capacity_rps),
        ]
        for step in steps
    ]
    failed = sum(len(step.load.failures) for step in steps)
    return format_table(headers, rows) + f"\n\nfailed requests: {failed}"


def _rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0f}"


def _versus(rate: float | None, capacity_rps: float) -> str:
    return "-" if rate is None else f"{rate / capacity_rps - 1:+.1%}"
