"""What a load run sent and measured: per request, per second, and whether the
generator kept its schedule. Plain values, so reports and drills read a finished run
without loading the Triton clients that produced it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from hdrh.histogram import HdrHistogram

from loadtest.traces import Trace

Protocol = Literal["http", "grpc"]
Bound = Literal["max_requests", "time_limit", "stop"]
"""What can end a run before its trace does: the request cap, the time limit, or a
stop from outside (Ctrl-C)."""

BOUND_NAMES: dict[Bound, str] = {
    "max_requests": "the request cap",
    "time_limit": "the time limit",
    "stop": "Ctrl-C",
}

HISTOGRAM_DIGITS = 3


@dataclass(frozen=True)
class Target:
    """Where load goes: the gateway or one replica, host:port of its HTTP or gRPC port."""

    url: str
    protocol: Protocol


@dataclass(frozen=True)
class SecondStats:
    """One second of the run, by intended send time."""

    second: int
    planned_rps: float
    """The trace's requests in that second (its rate's integral there)."""
    sent: int
    ok: int
    failed: int
    p50_ms: float | None
    p99_ms: float | None
    """From an HDR histogram of that second's ok requests; None when none succeeded."""


@dataclass(frozen=True)
class ScheduleCheck:
    """Whether the generator offered the load it was asked to, and if not, why."""

    kept: bool
    planned: int
    sent: int
    lag_p99_ms: float
    lag_max_ms: float
    late_share: float
    """Share of sends later than scheduler.LATE_MS after their intended time."""
    client_cpu_share: float
    """Generator CPU over wall time while sending; 1.0 = one core."""
    reason: str | None
    """When not kept: what limited it, in words a user can act on."""
    max_in_flight: int = 0
    """Most requests awaiting an answer at once."""


@dataclass(frozen=True)
class Coverage:
    """How much of its trace a run offered, and which bound ended it early if one did:
    a verdict about load that was never offered is not a verdict about the trace."""

    bound: Bound | None
    """None: the whole trace was offered."""
    limit: float | None
    """The bound's setting: the request cap, or the time limit in seconds."""
    end_s: float
    """Where in the trace offering ended, in seconds from t = 0."""
    trace_s: float
    """The trace's duration."""
    planned: int
    """Requests the whole trace planned."""
    offered: int
    """Requests sent."""

    @property
    def complete(self) -> bool:
        return self.bound is None

    @property
    def trace_share(self) -> float:
        return min(1.0, self.end_s / self.trace_s) if self.trace_s > 0 else 1.0

    @property
    def requests_share(self) -> float:
        return self.offered / self.planned if self.planned else 1.0

    @property
    def partial_note(self) -> str:
        """For the verdict: "partial: 43% of the trace"."""
        return f"partial: {share_percent(self.trace_share)} of the trace"

    def describe(self) -> str:
        """Which bound ended the run, when, and what share of the plan was offered."""
        if self.bound is None:
            return f"the whole trace was offered: {self.offered} requests over {self.trace_s:g} s"
        bound = BOUND_NAMES[self.bound]
        if self.bound == "max_requests" and self.limit is not None:
            bound += f" ({self.limit:.0f} requests)"
        elif self.bound == "time_limit" and self.limit is not None:
            bound += f" ({self.limit:g} s)"
        return (
            f"cut short by {bound} at t = {self.end_s:.1f} s of the trace's {self.trace_s:g} s: "
            f"{self.offered} of {self.planned} planned requests "
            f"({share_percent(self.requests_share)}) and {share_percent(self.trace_share)} of "
            "its duration were offered"
        )


def share_percent(share: float) -> str:
    """A share as whole percent rounded down, so a run cut short never reads 100%."""
    if 0 < share < 0.01:
        return "<1%"
    return f"{math.floor(share * 100 + 1e-9):.0f}%"


@dataclass
class LoadRun:
    """What one run sent and measured, per request and per second."""

    trace: Trace
    target: Target
    started_at: float
    """Epoch seconds of t = 0."""
    intended_s: np.ndarray
    """Intended send offset of each sent request from t = 0, in send order."""
    latency_s: np.ndarray
    """From the intended send time to the answer; NaN when the request failed."""
    ok: np.ndarray
    errors: dict[str, int]
    """Error kind ("UNAVAILABLE", "HTTP 503", "timeout", ...) -> count."""
    error_examples: list[str]
    schedule: ScheduleCheck
    seconds: list[SecondStats]
    lag_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """How late each request actually left after its intended time."""
    end_s: float = 0.0
    """Offset of the end of the planned window: the trace's end, or earlier when a
    bound (max_requests, the time limit, `stop`) cut the run."""
    ended_by: Bound | None = None
    """The bound that cut the run short; None when it offered its whole trace."""
    bound_limit: float | None = None
    """That bound's setting (the cap, or the time limit in seconds)."""
    planned_total: int | None = None
    """Requests the whole trace planned; None: as many as were sent."""

    @property
    def coverage(self) -> Coverage:
        return Coverage(
            bound=self.ended_by,
            limit=self.bound_limit if self.ended_by else None,
            end_s=self.end_s,
            trace_s=self.trace.duration_s,
            planned=self.sent if self.planned_total is None else self.planned_total,
            offered=self.sent,
        )

    @property
    def sent(self) -> int:
        return len(self.intended_s)

    @property
    def succeeded(self) -> int:
        return int(np.count_nonzero(self.ok))

    @property
    def failed(self) -> int:
        return self.sent - self.succeeded

    @property
    def achieved_rps(self) -> float:
        """Requests sent per second over the planned window, or until the last send
        when the generator fell behind and ran past it."""
        if not self.sent:
            return 0.0
        last_send = float(np.max(self.intended_s + self.lag_s)) if len(self.lag_s) else 0.0
        span = max(self.end_s, last_send)
        return self.sent / span if span > 0 else 0.0

    def percentile_ms(
        self, q: float, since_s: float | None = None, until_s: float | None = None
    ) -> float | None:
        """The q-th percentile latency of ok requests intended in [since_s, until_s)."""
        chosen = self.ok.copy()
        if since_s is not None:
            chosen &= self.intended_s >= since_s
        if until_s is not None:
            chosen &= self.intended_s < until_s
        return percentiles_ms(self.latency_s[chosen], (q,))[0]


def per_second(
    trace: Trace, end_s: float, intended: np.ndarray, latency: np.ndarray, ok: np.ndarray
) -> list[SecondStats]:
    seconds = np.floor(intended).astype(int)
    rows = []
    for second in range(math.ceil(end_s)):
        in_second = seconds == second
        good = in_second & ok
        p50, p99 = percentiles_ms(latency[good], (50.0, 99.0))
        sent = int(np.count_nonzero(in_second))
        succeeded = int(np.count_nonzero(good))
        rows.append(
            SecondStats(
                second=second,
                planned_rps=trace.expected_requests(second, second + 1),
                sent=sent,
                ok=succeeded,
                failed=sent - succeeded,
                p50_ms=p50,
                p99_ms=p99,
            )
        )
    return rows


def percentiles_ms(latency_s: np.ndarray, qs: tuple[float, ...]) -> list[float | None]:
    """Percentiles from an HDR histogram in microseconds (3 significant digits), the
    same way for every figure the reports show."""
    if not len(latency_s):
        return [None for _ in qs]
    micros = np.maximum(1, np.rint(latency_s * 1e6)).astype(np.int64)
    histogram = HdrHistogram(1, max(2, int(micros.max()) + 1), HISTOGRAM_DIGITS)
    for value, count in zip(*np.unique(micros, return_counts=True), strict=True):
        histogram.record_value(int(value), int(count))
    return [histogram.get_value_at_percentile(_rounding_up(q, len(micros))) / 1000.0 for q in qs]


def _rounding_up(q: float, count: int) -> float:
    """The percentile to ask hdrh for so it returns the nearest-rank value (rank rounded
    up, as HdrHistogram in Java does): hdrh rounds the rank to the nearest, which makes
    the p99 of 80 requests the second slowest instead of the slowest."""
    rank = max(1, math.ceil(q / 100.0 * count - 1e-9))
    return min(100.0, (rank - 0.5 + 1e-6) * 100.0 / count)
