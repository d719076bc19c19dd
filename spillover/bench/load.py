"""A closed-loop load runner: N workers, each sends its next request when the last returns.

Bounded by duration and by request count. Latency percentiles come from every
request's own measurement, not from averages.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

Send = Callable[[int], Awaitable[None]]
"""Sends request number i and returns when its answer is in; raises on failure."""


@dataclass
class LoadResult:
    """What a run measured."""

    label: str
    concurrency: int
    elapsed_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    client_cpu_share: float = 0.0
    """CPU the load generator itself used, as a share of one core (1.0 = a whole core)."""

    @property
    def ok(self) -> int:
        return len(self.latencies_s)

    @property
    def throughput(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s else 0.0

    def percentile_ms(self, q: float) -> float:
        if not self.latencies_s:
            return float("nan")
        return float(np.percentile(self.latencies_s, q) * 1000.0)


async def run_closed_loop(
    label: str, send: Send, concurrency: int, duration_s: float, max_requests: int
) -> LoadResult:
    """Run `concurrency` workers until duration_s passes or max_requests were sent."""
    result = LoadResult(label, concurrency)
    next_index = 0
    start = time.perf_counter()
    deadline = start + duration_s

    async def worker() -> None:
        nonlocal next_index
        while next_index < max_requests and time.perf_counter() < deadline:
            index = next_index
            next_index += 1
            sent = time.perf_counter()
            try:
                await send(index)
            except Exception as error:  # a failed request is a measurement, not a crash
                result.failures.append(f"{type(error).__name__}: {error}")
                continue
            result.latencies_s.append(time.perf_counter() - sent)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed_s = time.perf_counter() - start
    return result


def combine(results: list[LoadResult]) -> LoadResult:
    """One result from several runs of the same setup (interleaved rounds)."""
    combined = LoadResult(results[0].label, results[0].concurrency)
    for result in results:
        combined.elapsed_s += result.elapsed_s
        combined.latencies_s += result.latencies_s
        combined.failures += result.failures
        combined.client_cpu_share += result.client_cpu_share * result.elapsed_s
    combined.client_cpu_share /= combined.elapsed_s or 1.0
    return combined


SUMMARY_HEADERS = ["ok", "failed", "req/s", "p50 ms", "p99 ms"]


def summary_row(result: LoadResult) -> list[object]:
    """The figures every load table shows, in SUMMARY_HEADERS order."""
    return [
        result.ok,
        len(result.failures),
        round(result.throughput, 1),
        round(result.percentile_ms(50), 2),
        round(result.percentile_ms(99), 2),
    ]
