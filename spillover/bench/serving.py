"""Serving benchmark: Triton + dynamic batching vs a Flask app, and the gateway's overhead.

All setups serve the same ONNX file on the same machine and take the same
closed-loop load (same concurrency, same requests) in one run, so the ratios
hold even on a noisy machine where absolute figures drift.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from spillover.bench.load import (
    SUMMARY_HEADERS,
    LoadResult,
    combine,
    run_closed_loop,
    summary_row,
)
from spillover.bench.rawhttp import flask_body, flask_requests, pooled_sender, triton_requests
from spillover.drivers.local.layout import LocalLayout, LocalPool
from spillover.drivers.processes import log_tail, start_process, stop_group
from spillover.errors import SpilloverError
from spillover.local.stack import LocalStack
from spillover.serving.client import RecommenderClient
from spillover.serving.workload import Request, sample_requests
from spillover.tables import format_table

HOST = "127.0.0.1"


class BenchError(SpilloverError):
    """The benchmark could not measure what it claims to; the message says why."""


GATEWAY, FLASK, DIRECT = "triton via gateway", "flask per-request", "triton direct"
GATEWAY_ONE, DIRECT_ONE = "triton via gateway, 1 in flight", "triton direct, 1 in flight"


Setup = tuple[str, int, list[bytes], int]
"""One thing to load: (label, port, pre-built requests, requests in flight)."""


@dataclass(frozen=True, kw_only=True)
class ReplicaBenchSettings:
    """How a benchmark that loads local Triton replicas runs; shared by the benchmarks."""

    n_users: int
    """Users in the model, for sampling request user ids."""
    n_items: int
    """Items in the catalog, for sampling histories."""
    work_dir: Path
    """Run directory for the stacks, the baseline's log, and nothing else."""
    concurrency: int = 32
    """Requests in flight for every setup."""
    duration_s: float = 10.0
    """How long each setup is loaded, per round."""
    max_requests: int = 200_000
    """Upper bound on requests per setup, whatever the duration."""
    warmup_s: float = 3.0
    """Load before measuring, so every setup is measured warm."""
    port_base: int = 9100
    """Gateway port of the benchmark's first stack; everything else follows."""
    rounds: int = 2
    """Each setup runs this many times, interleaved, so drift over the run hits all alike."""
    model_instances: int = 2
    """Triton model instances: two let Triton run batches on both cores, as Flask's
    request threads run requests on both cores."""
    model_threads: int = 1
    """ONNX Runtime threads per model call, the same for Triton and the Flask baseline."""


@dataclass(frozen=True, kw_only=True)
class ServingBenchConfig(ReplicaBenchSettings):
    """How the serving benchmark runs."""

    model_path: Path
    """The ONNX file every setup serves (the 100k-item catalog by default)."""


def run_serving_bench(config: ServingBenchConfig) -> list[LoadResult]:
    requests = sample_requests(config.n_users, config.n_items, count=4096, seed=7)
    layout = LocalLayout((LocalPool("private", 1, 1), LocalPool("burst", 0, 1)), config.port_base)
    stack = LocalStack(config.work_dir / "stack")
    flask_port = config.port_base + 9
    stack.up(
        layout,
        config.model_path,
        model_instances=config.model_instances,
        model_threads=config.model_threads,
    )
    flask = start_process(
        [
            sys.executable,
            "-m",
            "spillover.bench.flask_baseline",
            f"--model={config.model_path}",
            f"--port={flask_port}",
            f"--intra-op-threads={config.model_threads}",
        ],
        config.work_dir / "flask.log",
    )
    try:
        _wait_http_ok(f"http://{HOST}:{flask_port}/health", 60.0, config.work_dir / "flask.log")
        gateway, direct = layout.gateway_port("http"), layout.slots[0].ports.http
        _check_same_answers(f"{HOST}:{gateway}", flask_port, requests[:8])
        via_gateway = triton_requests(HOST, gateway, requests)
        to_replica = triton_requests(HOST, direct, requests)
        busy = config.concurrency
        setups: list[Setup] = [
            (GATEWAY, gateway, via_gateway, busy),
            (FLASK, flask_port, flask_requests(HOST, flask_port, requests), busy),
            (DIRECT, direct, to_replica, busy),
            # One request in flight: the gateway's own latency, without CPU contention.
            (GATEWAY_ONE, gateway, via_gateway, 1),
            (DIRECT_ONE, direct, to_replica, 1),
        ]
        return measure_interleaved(setups, config)
    finally:
        stop_group(flask.pid)
        stack.down()


def measure_interleaved(setups: list[Setup], config: ReplicaBenchSettings) -> list[LoadResult]:
    """Every setup once per round, rounds one after another; one result per setup.

    Each round starts one setup further along, so no setup always runs right after
    the same neighbour or at the same point of a round: a machine whose load
    comes and goes (others' jobs) weighs on every setup alike over the rounds.
    """
    runs: list[list[LoadResult]] = [[] for _ in setups]
    for round_index in range(config.rounds):
        for offset in range(len(setups)):
            index = (round_index + offset) % len(setups)
            runs[index].append(asyncio.run(_measure(*setups[index], config)))
    return [combine(setup_runs) for setup_runs in runs]


async def _measure(
    label: str, port: int, built: list[bytes], concurrency: int, config: ReplicaBenchSettings
) -> LoadResult:
    send, pool = await pooled_sender(HOST, port, built, concurrency)
    try:
        await run_closed_loop(label, send, concurrency, config.warmup_s, config.max_requests)
        cpu_before = time.process_time()
        result = await run_closed_loop(
            label, send, concurrency, config.duration_s, config.max_requests
        )
        result.client_cpu_share = (time.process_time() - cpu_before) / result.elapsed_s
        return result
    finally:
        await pool.close()


def _check_same_answers(triton_url: str, flask_port: int, requests: list[Request]) -> None:
    """Both setups must serve the same recommendations, or the comparison means nothing."""
    with RecommenderClient(triton_url) as triton:
        for request in requests:
            from_triton = triton.recommend(request.user_ids.ravel().tolist(), request.histories)
            call = urllib.request.Request(
                f"http://{HOST}:{flask_port}/recommend",
                flask_body(request),
                {"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(call, timeout=10) as response:
                from_flask = json.loads(response.read())["item_ids"]
            if from_triton.item_ids[0].tolist() != from_flask:
                raise BenchError(
                    f"Triton and Flask recommend different items for user "
                    f"{int(request.user_ids[0, 0])}: {from_triton.item_ids[0].tolist()} vs "
                    f"{from_flask}; the comparison would mean nothing"
                )


def _wait_http_ok(url: str, timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                if response.status == 200:
                    return
        except (OSError, http.client.HTTPException):  # not up yet, or a self-connected probe
            time.sleep(0.2)
    raise BenchError(
        f"{url} did not answer within {timeout_s:.0f} s; last lines of {log}:\n{log_tail(log)}"
    )


def report(results: list[LoadResult]) -> str:
    """The side-by-side table and the ratios the goals are stated in."""
    by_label = {result.label: result for result in results}
    rows = [[r.label, r.concurrency, *summary_row(r), f"{r.client_cpu_share:.0%}"] for r in results]
    table = format_table(["setup", "concurrency", *SUMMARY_HEADERS, "client CPU"], rows)
    triton, flask, direct = by_label[GATEWAY], by_label[FLASK], by_label[DIRECT]
    gateway_one, direct_one = by_label[GATEWAY_ONE], by_label[DIRECT_ONE]
    lines = [
        table,
        "",
        "(a/b) Triton+batching vs Flask:"
        f" {_ratio(triton.throughput, flask.throughput):.2f}x throughput"
        f" (goal >= 5x); p99 {triton.percentile_ms(99):.1f} vs {flask.percentile_ms(99):.1f} ms"
        " (goal: no worse)",
        f"(c) gateway vs direct: {_ratio(triton.throughput, direct.throughput):.3f}x throughput"
        f" (goal >= 0.95x); p50 added {_added_p50(gateway_one, direct_one):+.2f} ms with one"
        f" request in flight, {_added_p50(triton, direct):+.2f} ms at concurrency"
        f" {triton.concurrency} (goal <= 0.3 ms)",
    ]
    return "\n".join(lines)


def _added_p50(via_gateway: LoadResult, direct: LoadResult) -> float:
    return via_gateway.percentile_ms(50) - direct.percentile_ms(50)


def _ratio(a: float, b: float) -> float:
    """a / b, or NaN when b served nothing (its failures are in the table)."""
    return a / b if b else float("nan")
