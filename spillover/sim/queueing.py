"""Latency of a pool from its load: an M/D/c queue, by approximation.

Why M/D/c: requests arrive from very many independent users (Poisson, the "M"), and
a Triton replica serving one fixed model takes a near-constant time per request (the
"D": the same tensor shapes every time), with c replicas behind one gateway. M/D/c
has no closed form, so this uses the standard Allen–Cunneen correction of M/M/c:
Wq(M/D/c) ≈ Wq(M/M/c) · (ca² + cs²)/2 with ca² = 1 (Poisson) and cs² = 0
(deterministic), i.e. half the M/M/c wait, and a waiting-time tail
P(Wq > t) ≈ C(c, a) · exp(-2 (cμ - λ) t) with the same halved mean. C(c, a) is
Erlang C: exact (Erlang B recursion) for small pools, and the Halfin–Whitt
approximation for large ones, where it is accurate and O(1).

A saturated pool (λ ≥ cμ) serves cμ; the rest of its requests fail (they time out
in a queue that only grows), and none it serves is within the SLO.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

EXACT_UP_TO = 24
"""Pools up to this many replicas get the exact Erlang C; larger ones Halfin–Whitt."""

SLO_QUANTILE = 0.99
"""The SLO is a p99: a second meets it when 99% of its requests are within it."""


def erlang_c(servers: int, offered: float) -> float:
    """Probability an arrival waits, for `servers` servers and `offered` = λ/μ erlangs."""
    if servers <= 0:
        return 1.0
    rho = offered / servers
    if rho >= 1:
        return 1.0
    if offered <= 0:
        return 0.0
    if servers <= EXACT_UP_TO:
        blocking = 1.0
        for k in range(1, servers + 1):
            blocking = offered * blocking / (k + offered * blocking)
        return blocking / (1 - rho * (1 - blocking))
    beta = (1 - rho) * math.sqrt(servers)
    if beta > 8:
        return 0.0  # below 1e-14: no queue worth counting
    density = math.exp(-beta * beta / 2) / math.sqrt(2 * math.pi)
    cumulative = 0.5 * (1 + math.erf(beta / math.sqrt(2)))
    return 1 / (1 + beta * cumulative / density)


@dataclass(frozen=True)
class PoolLatency:
    served_rps: float
    failed_rps: float
    within_slo_rps: float
    mean_wait_ms: float
    """Average time in the queue (what Triton's queue-time counter reports)."""
    p99_ms: float
    """p99 end to end: base latency + service + the queue's 99th percentile."""


def pool_latency(
    arriving_rps: float,
    replicas: int,
    capacity_rps: float,
    base_ms: float,
    slo_ms: float,
) -> PoolLatency:
    """What a pool of `replicas` x `capacity_rps` does with `arriving_rps` for a second."""
    if arriving_rps <= 0:
        return PoolLatency(0.0, 0.0, 0.0, 0.0, 0.0)
    if replicas <= 0:
        return PoolLatency(0.0, arriving_rps, 0.0, 0.0, math.inf)
    full = replicas * capacity_rps
    if arriving_rps >= full:
        return PoolLatency(full, arriving_rps - full, 0.0, math.inf, math.inf)
    service_ms = 1000.0 / capacity_rps
    waiting = erlang_c(replicas, arriving_rps / capacity_rps)
    drain_per_ms = 2 * (full - arriving_rps) / 1000.0  # the tail's decay rate, per ms
    mean_wait = waiting / drain_per_ms
    budget = slo_ms - base_ms - service_ms
    late = 1.0 if budget < 0 else min(1.0, waiting * math.exp(-drain_per_ms * budget))
    tail = 1 - SLO_QUANTILE
    p99_wait = math.log(waiting / tail) / drain_per_ms if waiting > tail else 0.0
    return PoolLatency(
        served_rps=arriving_rps,
        failed_rps=0.0,
        within_slo_rps=arriving_rps * (1 - late),
        mean_wait_ms=mean_wait,
        p99_ms=base_ms + service_ms + p99_wait,
    )


def max_load_within_slo(replicas: int, capacity_rps: float, base_ms: float, slo_ms: float) -> float:
    """The most requests per second `replicas` serve with their p99 within the SLO
    (bisection on the arrival rate; the perfect-foresight bound sizes with it)."""
    if replicas <= 0:
        return 0.0
    full = replicas * capacity_rps
    if base_ms + 1000.0 / capacity_rps > slo_ms:
        return 0.0
    low, high = 0.0, full
    for _ in range(40):
        middle = (low + high) / 2
        if pool_latency(middle, replicas, capacity_rps, base_ms, slo_ms).p99_ms <= slo_ms:
            low = middle
        else:
            high = middle
    return low
