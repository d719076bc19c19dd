"""Reading every replica's Triton ``/metrics`` in parallel, each answer stamped with
when it was read.

A tick's scrapes run on threads and answer at different moments; the counters of
one replica become rates over the time between two of its own reads, so each
answer carries the monotonic time it was taken.
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from spillover.controller import triton_metrics
from spillover.drivers.pools import ReplicaTarget
from spillover.settings import ObserveSettings

logger = logging.getLogger(__name__)

MetricsFetcher = Callable[[str, float], str]
"""(metrics_url, timeout_seconds) -> the Prometheus text it answers."""


def fetch_metrics(url: str, timeout_s: float) -> str:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return str(response.read().decode())


@dataclass(frozen=True)
class Answer:
    """One replica's /metrics text or why there is none, and when it was read."""

    text: str | BaseException
    read_at: float
    """Monotonic seconds: the middle of the request that read it."""


def scrape_all(
    replicas: Sequence[ReplicaTarget],
    fetch: MetricsFetcher,
    settings: ObserveSettings,
    monotonic: Callable[[], float],
) -> dict[str, Answer]:
    """Each replica with a metrics URL (a pod with no IP yet has none), by name; one
    that did not answer within the scrape timeout is a TimeoutError."""
    timeout_s = settings.scrape_timeout_s
    replicas = [replica for replica in replicas if replica.metrics_url]
    if not replicas:
        return {}

    def timed(replica: ReplicaTarget) -> tuple[str, float]:
        before = monotonic()
        if replica.read_metrics is not None:
            text = replica.read_metrics(timeout_s)
        else:
            text = fetch(replica.metrics_url, timeout_s)
        return text, (before + monotonic()) / 2

    executor = ThreadPoolExecutor(max_workers=min(settings.max_parallel_scrapes, len(replicas)))
    try:
        futures = {replica.name: executor.submit(timed, replica) for replica in replicas}
        wait(futures.values(), timeout=timeout_s + 0.5)
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
    return {name: _answer(future, monotonic) for name, future in futures.items()}


def _answer(future: Future[tuple[str, float]], monotonic: Callable[[], float]) -> Answer:
    if not future.done():
        return Answer(TimeoutError("no answer in time"), monotonic())
    error = future.exception()
    if error is not None:
        return Answer(error, monotonic())
    text, read_at = future.result()
    return Answer(text, read_at)


def parse(replica: ReplicaTarget, answer: Answer | None) -> triton_metrics.TritonCounters | None:
    """The answer's counters; None (logged) when there is no usable answer."""
    problem: object = answer.text if answer is not None else None
    if answer is not None and isinstance(answer.text, str):
        try:
            return triton_metrics.parse_counters(answer.text)
        except ValueError as error:
            problem = f"not Prometheus text ({error})"
    # A starting replica often has no metrics endpoint yet, nor one on its way out; a
    # ready one should.
    level = logging.WARNING if replica.ready and not replica.draining else logging.DEBUG
    logger.log(level, "no metrics from %s at %s: %s", replica.name, replica.metrics_url, problem)
    return None
