"""Open-loop load against Triton: requests leave on schedule, never waiting for answers.

A closed-loop client sends its next request only when an answer arrives, so a slow
server slows the client down and the slow period hides in a handful of samples
(coordinated omission). Here every request has an intended send time drawn from
the trace before the run starts; each is sent at that time as its own task, and
its latency is measured from the intended time, so a stall shows in every request
that should have been sent during it.

The generator also checks itself: when it cannot send on time (this machine's
CPU is the limit, not the server), the run says so instead of quietly offering
less load than asked.
"""

from __future__ import annotations

import asyncio
import gc
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np

from loadtest.clients import HTTP_CONNECTIONS, Infer, error_kind, open_client
from loadtest.results import Bound, LoadRun, ScheduleCheck, Target, per_second
from loadtest.traces import Arrivals, Trace, draw_arrivals
from spillover.errors import SpilloverError
from spillover.serving.client import build_inputs
from spillover.serving.workload import sample_requests

LATE_MS = 10.0
"""A send later than this after its intended time counts as late."""
LATE_SHARE_ALLOWED = 0.05
"""The schedule counts as kept while at most this share of sends is late: on a machine
whose cores Triton shares, a few sends a little late leave every second's load as asked."""
MAX_LAG_MS = 250.0
"""A send later than this means the generator stalled and bunched a quarter second of
load into a burst: the schedule was not kept, however rare."""
BUSY_CORE_SHARE = 0.8
"""Above this CPU share of one core, the generator's own work is what makes it late."""
REQUEST_POOL = 2048
"""Distinct requests built before the run and cycled, so sending costs little Python."""
DEFAULT_START_DELAY_S = 0.2
"""Time to open clients before t = 0 when no start time is given."""
MAX_SLEEP_S = 0.1
"""The scheduler wakes at least this often to notice `stop`."""
ERROR_EXAMPLES = 5
BYTES_PER_REQUEST = 25
"""What a run keeps per request: intended time, send lag and latency (8 bytes each) and
whether it succeeded."""
MAX_KEPT_REQUESTS = 20_000_000
"""At most this many requests per run (about 0.5 GB of figures): memory stays bounded
whatever the trace, and a longer plan is refused before anything is sent."""


class PlanTooLargeError(SpilloverError):
    """The run would keep more per-request figures than MAX_KEPT_REQUESTS allows."""


def run_load(
    target: Target,
    trace: Trace,
    *,
    n_users: int,
    n_items: int,
    max_requests: int | None = None,
    time_limit_s: float | None = None,
    seed: int = 0,
    request_timeout_s: float = 10.0,
    start_at: float | None = None,
    stop: threading.Event | None = None,
) -> LoadRun:
    """Offer `trace` to `target` open loop and measure every answer.

    Blocking: runs its own asyncio loop in the calling thread. Each request leaves at
    start_at + its intended offset (start_at defaults to now + 0.2 s) as its own task.
    The whole trace is offered unless a bound ends it first: max_requests (None: the
    trace's own plan), time_limit_s (nothing intended after it is sent) or `stop`;
    the run says which did (LoadRun.coverage). After the last send it waits at most
    request_timeout_s for the answers in flight.
    """
    if max_requests is not None and max_requests < 1:
        raise ValueError(f"max_requests must be at least 1, got {max_requests}")
    if time_limit_s is not None and not time_limit_s > 0:
        raise ValueError(f"time_limit_s must be above 0, got {time_limit_s}")
    if request_timeout_s <= 0:
        raise ValueError(f"request_timeout_s must be above 0, got {request_timeout_s}")
    check_plan_size(trace, max_requests, time_limit_s)
    window = _window(trace, draw_arrivals(trace, seed, max_requests), max_requests, time_limit_s)
    count = max(1, len(window.offsets))
    requests = sample_requests(n_users, n_items, min(REQUEST_POOL, count), seed)
    pool = [build_inputs(target.protocol, r.user_ids, r.histories) for r in requests]
    start_at = time.time() + DEFAULT_START_DELAY_S if start_at is None else start_at
    sender = _Sender(target, window, pool, request_timeout_s, stop)
    # A full garbage collection walks every object the process holds: about 250 ms in
    # a test session that has loaded Pulumi, Kubernetes and matplotlib, and every send
    # due meanwhile leaves late. What existed before the run is not the run's garbage,
    # so collections during it skip those objects.
    gc.freeze()
    try:
        asyncio.run(sender.run(start_at))
    finally:
        gc.unfreeze()
    return sender.result(trace, start_at)


@dataclass(frozen=True)
class _Window:
    """What a run is to send: the requests, the end of the window they fill, and the
    bound that ends the window before the trace does, if one does."""

    offsets: np.ndarray
    until_s: float
    planned_total: int
    bound: Bound | None
    limit: float | None


def _window(
    trace: Trace, plan: Arrivals, max_requests: int | None, time_limit_s: float | None
) -> _Window:
    offsets, until_s = plan.offsets, trace.duration_s
    bound: Bound | None = None
    limit: float | None = None
    if max_requests is not None and plan.total > max_requests:
        # Up to the last request the cap allows: a cut run has no quiet end to wait out.
        until_s, bound, limit = float(offsets[-1]), "max_requests", float(max_requests)
    if time_limit_s is not None and time_limit_s < until_s:
        offsets = offsets[offsets <= time_limit_s]
        until_s, bound, limit = time_limit_s, "time_limit", time_limit_s
    return _Window(offsets, until_s, plan.total, bound, limit)


def check_plan_size(trace: Trace, max_requests: int | None, time_limit_s: float | None) -> None:
    """Refuse, before drawing anything, a run whose per-request figures would not fit."""
    expected = trace.expected_requests(0.0, time_limit_s)
    if min(expected, max_requests or math.inf) <= MAX_KEPT_REQUESTS:
        return
    raise PlanTooLargeError(
        f"the trace plans about {expected:.0f} requests; a run keeps each one's intended "
        f"time, send lag, latency and outcome (about {BYTES_PER_REQUEST} bytes), so at most "
        f"{MAX_KEPT_REQUESTS} requests (~{MAX_KEPT_REQUESTS * BYTES_PER_REQUEST / 1e9:.1f} GB) "
        "per run: shorten the trace, lower its rate, or offer its first part with a "
        "request cap or a time limit"
    )


class _Sender:
    """One run's state: the schedule, per-request outcomes, and the clients."""

    def __init__(
        self,
        target: Target,
        window: _Window,
        pool: list[list],
        timeout_s: float,
        stop: threading.Event | None,
    ) -> None:
        self.target = target
        self.window = window
        self.offsets = offsets = window.offsets
        self.until_s = window.until_s
        self.pool = pool
        self.timeout_s = timeout_s
        self.stop = stop
        count = len(offsets)
        self.latency = np.full(count, np.nan)
        self.lag = np.full(count, np.nan)
        self.ok = np.zeros(count, dtype=bool)
        self.launched = 0
        self.stopped_at: float | None = None
        self.errors: Counter[str] = Counter()
        self.examples: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.cpu_share = 0.0

    async def run(self, start_at: float) -> None:
        infer, close = await open_client(self.target, self.timeout_s)
        try:
            # perf_counter for every offset: monotonic and fine-grained, unlike time.time.
            t0 = time.perf_counter() + (start_at - time.time())
            await asyncio.sleep(max(0.0, t0 - time.perf_counter()))
            cpu_before, wall_before = time.process_time(), time.perf_counter()
            tasks = await self._schedule(infer, t0)
            wall = time.perf_counter() - wall_before
            self.cpu_share = (time.process_time() - cpu_before) / wall if wall > 0 else 0.0
            if tasks:
                # Every task bounds itself with the request timeout; this is a backstop.
                _, pending = await asyncio.wait(tasks, timeout=self.timeout_s + 1.0)
                for task in pending:
                    task.cancel()
                if pending:
                    await asyncio.wait(pending)
        finally:
            await close()

    async def _schedule(self, infer: Infer, t0: float) -> set[asyncio.Task]:
        tasks: set[asyncio.Task] = set()
        offsets, count = self.offsets, len(self.offsets)
        index = 0
        while True:
            now = time.perf_counter() - t0
            # Everything already due leaves now, in one go, rather than a sleep apiece.
            due = int(np.searchsorted(offsets, now, side="right"))
            for i in range(index, due):
                task = asyncio.create_task(self._one(infer, i, t0))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            index = self.launched = max(index, due)
            if self.stop is not None and self.stop.is_set():
                self.stopped_at = now
                break
            if index >= count and now >= self.until_s:
                break
            # The new tasks start their sends while this sleeps. After the last request
            # it sleeps to the end of the window: a quiet end is part of the trace too.
            next_s = offsets[index] if index < count else self.until_s
            await asyncio.sleep(min(max(0.0, next_s - now), MAX_SLEEP_S))
        return tasks

    async def _one(self, infer: Infer, i: int, t0: float) -> None:
        intended = self.offsets[i]
        self.lag[i] = time.perf_counter() - t0 - intended
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await infer(self.pool[i % len(self.pool)])
        except Exception as error:  # a failed request is a measurement, not a crash
            kind = error_kind(error)
            silent = kind == "timeout" and not str(error)
            self._failed(kind, f"no answer within {self.timeout_s:g} s" if silent else str(error))
        except asyncio.CancelledError:  # the backstop after the last send, or Ctrl-C
            self._failed("timeout", "no answer when the run ended")
            raise
        else:
            self.latency[i] = time.perf_counter() - t0 - intended
            self.ok[i] = True
        finally:
            self.in_flight -= 1

    def _failed(self, kind: str, message: str) -> None:
        self.errors[kind] += 1
        if len(self.examples) < ERROR_EXAMPLES:
            self.examples.append(f"{kind}: {message}" if message else kind)

    def result(self, trace: Trace, start_at: float) -> LoadRun:
        sent = self.launched
        intended = self.offsets[:sent]
        lag = self.lag[:sent]
        latency, ok = self.latency[:sent], self.ok[:sent]
        bound, limit, end_s = self.window.bound, self.window.limit, self.until_s
        if self.stopped_at is not None and self.stopped_at < self.until_s:
            bound, limit, end_s = "stop", None, self.stopped_at
        planned = int(np.count_nonzero(self.offsets <= end_s))
        return LoadRun(
            trace=trace,
            target=self.target,
            started_at=start_at,
            intended_s=intended,
            latency_s=latency,
            ok=ok,
            errors=dict(self.errors),
            error_examples=list(self.examples),
            schedule=self._check(planned, sent, lag),
            seconds=per_second(trace, end_s, intended, latency, ok),
            lag_s=lag,
            end_s=end_s,
            ended_by=bound,
            bound_limit=limit,
            planned_total=self.window.planned_total,
        )

    def _check(self, planned: int, sent: int, lag: np.ndarray) -> ScheduleCheck:
        lag_ms = lag * 1000.0
        # nan-aware: a task cancelled (Ctrl-C) before it started has no lag.
        lag_p99 = float(np.nanpercentile(lag_ms, 99)) if sent else 0.0
        lag_max = float(np.nanmax(lag_ms)) if sent else 0.0
        late_share = float(np.mean(lag_ms > LATE_MS)) if sent else 0.0
        reasons = []
        if sent < planned:
            reasons.append(f"sent {sent} of the {planned} requests planned")
        if late_share > LATE_SHARE_ALLOWED or lag_max > MAX_LAG_MS:
            if self.cpu_share >= BUSY_CORE_SHARE:
                cause = f"the generator used {self.cpu_share:.2f} of a core"
            else:
                cause = (
                    f"the generator used only {self.cpu_share:.2f} of a core, so other "
                    "processes on this machine (Triton shares its cores) held the CPU"
                )
            reasons.append(
                f"sends ran up to {lag_max:.0f} ms late ({late_share:.0%} later than "
                f"{LATE_MS:.0f} ms): {cause}"
            )
        if self.target.protocol == "http" and self.max_in_flight >= HTTP_CONNECTIONS:
            reasons.append(
                f"{self.max_in_flight} requests were in flight at once, over the client's "
                f"{HTTP_CONNECTIONS} connections, so some waited in the generator for one"
            )
        reason = None
        if reasons:
            reason = "; ".join(reasons) + (
                "; offer less load or run the generator on another machine"
            )
        return ScheduleCheck(
            kept=not reasons,
            planned=planned,
            sent=sent,
            lag_p99_ms=lag_p99,
            lag_max_ms=lag_max,
            late_share=late_share,
            client_cpu_share=self.cpu_share,
            reason=reason,
            max_in_flight=self.max_in_flight,
        )
