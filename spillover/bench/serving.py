"""Serving benchmark: Triton + dynamic batching vs a Flask app, and the gateway's overhead.

All setups serve the same ONNX file on the same machine and take the same
closed-loop load (same concurrency, same requests) in one run, so the ratios
hold even on a noisy machine where absolute figures drift.
"""

from __future__ import annotations

import asyncio
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from spillover.bench.load import LoadResult, Send, run_closed_loop
from spillover.drivers.processes import start_process, stop_group
from spillover.local.layout import LocalLayout, LocalPool
from spillover.local.stack import LocalStack
from spillover.serving.client import AsyncRecommenderClient
from spillover.serving.workload import Request, sample_requests
from spillover.tables import format_table


@dataclass(frozen=True)
class ServingBenchConfig:
    """How the serving benchmark runs."""

    model_path: Path
    """The ONNX file every setup serves (the 100k-item catalog by default)."""
    n_users: int
    """Users in the model, for sampling request user ids."""
    n_items: int
    """Items in the catalog, for sampling histories."""
    work_dir: Path
    """Run directory for the stack, the baseline's log, and nothing else."""
    concurrency: int = 32
    """Requests in flight for every setup."""
    duration_s: float = 20.0
    """How long each setup is loaded."""
    max_requests: int = 200_000
    """Upper bound on requests per setup, whatever the duration."""
    warmup_s: float = 3.0
    """Load before measuring, so every setup is measured warm."""
    port_base: int = 9100
    """Gateway port of the benchmark's own stack; the baseline and replicas follow."""


def run_serving_bench(config: ServingBenchConfig) -> list[LoadResult]:
    requests = sample_requests(config.n_users, config.n_items, count=4096, seed=7)
    layout = LocalLayout((LocalPool("private", 1, 1), LocalPool("burst", 0, 1)), config.port_base)
    stack = LocalStack(config.work_dir / "stack")
    flask_port = config.port_base + 9
    flask_log = config.work_dir / "flask.log"
    stack.up(layout, config.model_path)
    flask = start_process(
        [
            sys.executable,
            "-m",
            "spillover.bench.flask_baseline",
            f"--model={config.model_path}",
            f"--port={flask_port}",
        ],
        flask_log,
    )
    try:
        _wait_http_ok(f"http://127.0.0.1:{flask_port}/health", timeout_s=60.0)
        gateway = f"127.0.0.1:{layout.gateway_port('http')}"
        direct = f"127.0.0.1:{layout.slots[0].ports.http}"
        setups: list[tuple[str, Callable[[], tuple[Send, Callable]]]] = [
            ("triton via gateway", lambda: _triton_sender(gateway, requests)),
            ("flask per-request", lambda: _flask_sender(flask_port, requests)),
            ("triton direct", lambda: _triton_sender(direct, requests)),
        ]
        return [asyncio.run(_measure(label, make, config)) for label, make in setups]
    finally:
        stop_group(flask.pid)
        stack.down()


async def _measure(
    label: str, make_sender: Callable[[], tuple[Send, Callable]], config: ServingBenchConfig
) -> LoadResult:
    send, close = make_sender()
    try:
        await run_closed_loop(label, send, config.concurrency, config.warmup_s, config.max_requests)
        return await run_closed_loop(
            label, send, config.concurrency, config.duration_s, config.max_requests
        )
    finally:
        await close()


def _triton_sender(url: str, requests: list[Request]) -> tuple[Send, Callable]:
    client = AsyncRecommenderClient(url, "http")

    async def send(index: int) -> None:
        request = requests[index % len(requests)]
        await client.recommend(request.user_ids, request.histories)

    return send, client.close


def _flask_sender(port: int, requests: list[Request]) -> tuple[Send, Callable]:
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
    url = f"http://127.0.0.1:{port}/recommend"
    bodies = [
        {"user_id": int(r.user_ids[0, 0]), "history": [int(i) for i in r.histories[0] if i >= 0]}
        for r in requests
    ]

    async def send(index: int) -> None:
        async with session.post(url, json=bodies[index % len(bodies)]) as response:
            response.raise_for_status()
            await response.json()

    return send, session.close


def _wait_http_ok(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s")


def report(results: list[LoadResult]) -> str:
    """The side-by-side table and the ratios the goals are stated in."""
    by_label = {result.label: result for result in results}
    rows = [
        [
            r.label,
            r.concurrency,
            r.ok,
            len(r.failures),
            round(r.throughput, 1),
            round(r.percentile_ms(50), 2),
            round(r.percentile_ms(99), 2),
        ]
        for r in results
    ]
    table = format_table(
        ["setup", "concurrency", "ok", "failed", "req/s", "p50 ms", "p99 ms"], rows
    )
    triton, flask = by_label["triton via gateway"], by_label["flask per-request"]
    direct = by_label["triton direct"]
    lines = [
        table,
        "",
        f"(a/b) Triton+batching vs Flask: {triton.throughput / flask.throughput:.2f}x throughput"
        f" (goal >= 5x); p99 {triton.percentile_ms(99):.1f} vs {flask.percentile_ms(99):.1f} ms"
        " (goal: no worse)",
        f"(c) gateway vs direct: {triton.throughput / direct.throughput:.3f}x throughput"
        f" (goal >= 0.95x); p50 added {triton.percentile_ms(50) - direct.percentile_ms(50):+.2f} ms"
        " (goal <= 0.3 ms)",
    ]
    return "\n".join(lines)
