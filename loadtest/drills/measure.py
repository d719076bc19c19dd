"""Figures a drill reads off what it observed: when something first happened after a
moment, how long p99 stayed over the SLO, what the controller decided and when, what
the ledger charged. Plain functions over recorded samples, so each is testable on its
own and a drill's assessment needs no stack."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from loadtest.report import Check, Event
from loadtest.results import LoadRun
from loadtest.timeline import ControllerSample, GatewaySample
from spillover.controller.ledger import CategoryRow, DecisionRecord, WindowRow
from spillover.drivers.haproxy import pool_of_server

SCALE = re.compile(r"^scale (?P<pool>\S+) to (?P<replicas>\d+)$")
RECOVERY_WINDOW_S = 0.5
"""p99 is judged over windows this long (by intended send time): 100 requests at 200 rps."""


def first_at(
    samples: Iterable[GatewaySample | ControllerSample],
    since: float,
    condition: Callable[[Any], bool],
) -> float | None:
    """When a sample at or after `since` first met the condition."""
    for sample in samples:
        if sample.at >= since and condition(sample):
            return sample.at
    return None


def statuses(sample: GatewaySample, pool: str) -> dict[str, str]:
    """The gateway's view of one pool's servers in a sample."""
    return {
        server: status
        for server, status in sample.status_by_server.items()
        if _pool_of(server) == pool
    }


def up_count(sample: GatewaySample, pool: str) -> int:
    return sum(1 for status in statuses(sample, pool).values() if status == "UP")


def none_up(pool: str) -> Callable[[GatewaySample], bool]:
    return lambda sample: "UP" not in statuses(sample, pool).values()


def share_at(samples: Sequence[GatewaySample], pool: str, at: float, window_s: float = 1.0):
    """The pool's share of the gateway's responses over the window ending at `at`;
    None without two samples around it (or across a gateway restart)."""
    before = [s for s in samples if s.at <= at - window_s]
    after = [s for s in samples if s.at <= at]
    if not before or not after or before[-1] is after[-1]:
        return None
    start, end = before[-1].responses_by_pool, after[-1].responses_by_pool
    deltas = {name: end.get(name, 0) - start.get(name, 0) for name in end}
    if any(delta < 0 for delta in deltas.values()) or not sum(deltas.values()):
        return None
    return deltas.get(pool, 0) / sum(deltas.values())


def first_share_at_least(
    samples: Sequence[GatewaySample], pool: str, since: float, share: float
) -> float | None:
    for sample in samples:
        if sample.at >= since:
            measured = share_at(samples, pool, sample.at)
            if measured is not None and measured >= share:
                return sample.at
    return None


def recovery_s(run: LoadRun, after_s: float, until_s: float, slo_ms: float) -> float:
    """Seconds after `after_s` until every later window (to `until_s`) of requests, by
    intended send time, has no failure and a p99 within the SLO; 0 if none was bad."""
    in_range = (run.intended_s >= after_s) & (run.intended_s < until_s)
    windows = ((run.intended_s[in_range] - after_s) // RECOVERY_WINDOW_S).astype(int)
    ok = run.ok[in_range]
    latency_ms = run.latency_s[in_range] * 1000.0
    last_bad = -1
    for window in np.unique(windows):
        members = windows == window
        if not ok[members].all():
            last_bad = max(last_bad, int(window))
            continue
        if float(np.percentile(latency_ms[members], 99)) > slo_ms:
            last_bad = max(last_bad, int(window))
    return (last_bad + 1) * RECOVERY_WINDOW_S


def within_slo_share(run: LoadRun, since_s: float, until_s: float, slo_ms: float) -> float | None:
    """Share of the requests intended in [since, until) answered within the SLO."""
    in_range = (run.intended_s >= since_s) & (run.intended_s < until_s)
    if not in_range.any():
        return None
    good = run.ok[in_range] & (run.latency_s[in_range] * 1000.0 <= slo_ms)
    return float(good.mean())


def failed_between(run: LoadRun, since_s: float, until_s: float = math.inf) -> int:
    in_range = (run.intended_s >= since_s) & (run.intended_s < until_s)
    return int((~run.ok[in_range]).sum())


# --- the controller's record -------------------------------------------------------------


def first_mode(records: Sequence[DecisionRecord], mode: str, since: float) -> float | None:
    for record in records:
        if record.at >= since and record.kind == "SetMode" and record.decision == f"mode {mode}":
            return record.at
    return None


def first_mode_other_than(
    records: Sequence[DecisionRecord], mode: str, since: float
) -> float | None:
    for record in records:
        if record.at >= since and record.kind == "SetMode" and record.decision != f"mode {mode}":
            return record.at
    return None


@dataclass(frozen=True)
class Resize:
    at: float
    pool: str
    before: int | None
    after: int
    reason: str


def resizes(records: Sequence[DecisionRecord], sizes: dict[str, int]) -> list[Resize]:
    """Scale decisions that changed a pool's size, given the sizes before the first."""
    known = dict(sizes)
    changes = []
    for record in records:
        match = SCALE.match(record.decision) if record.kind == "ScalePool" else None
        if match is None:
            continue
        pool, replicas = match["pool"], int(match["replicas"])
        if known.get(pool) != replicas:
            changes.append(Resize(record.at, pool, known.get(pool), replicas, record.reason))
            known[pool] = replicas
    return changes


def served_between(
    samples: Sequence[GatewaySample], server: str, since: float, until: float
) -> int | None:
    """Responses the server gave in [since, until] by the gateway's counters: the last
    samples at or before each end; None without both (or across a gateway restart)."""
    before = [s for s in samples if s.at <= since]
    after = [s for s in samples if s.at <= until]
    if not before or not after or server not in after[-1].responses_by_server:
        return None
    served = after[-1].responses_by_server[server] - before[-1].responses_by_server.get(server, 0)
    return None if served < 0 else served


def desired_sizes(sample: ControllerSample | None) -> dict[str, int]:
    if sample is None:
        return {}
    return {name: int(pool["desired"]) for name, pool in sample.pools.items() if pool["desired"]}


def last_before(samples: Sequence[ControllerSample], at: float) -> ControllerSample | None:
    earlier = [sample for sample in samples if sample.at <= at]
    return earlier[-1] if earlier else None


def spend_by_pool(
    charges: Iterable[WindowRow | CategoryRow], window_s: float, since: float, until: float
) -> dict[str, float]:
    """USD the ledger charged each pool for the windows overlapping [since, until), by
    pool name: a window counts whole when any part of it is in the range."""
    usd: dict[str, float] = {}
    for row in charges:
        if since - window_s < row.window_start < until:
            usd[row.pool] = usd.get(row.pool, 0.0) + row.usd
    return dict(sorted(usd.items()))


# --- the report's parts ------------------------------------------------------------------


def timing_check(
    name: str,
    seconds: float | None,
    threshold: float,
    never: str,
    late: str | None = None,
    unit: str = "s",
) -> Check:
    """That something happened within threshold: `never` says what limits it when it
    did not happen at all, `late` (or `never`) when it happened after the threshold."""
    limit = None
    if seconds is None:
        limit = never
    elif seconds > threshold:
        limit = late or never
    return Check(name, seconds, threshold, "<=", unit, limit)


FAILED_REQUESTS = "failed requests"


def failed_requests_check(run: LoadRun, threshold: int) -> Check:
    limit = None
    if run.failed:
        kinds = ", ".join(f"{kind} x{count}" for kind, count in sorted(run.errors.items()))
        limit = f"failed requests: {kinds}"
    return Check(FAILED_REQUESTS, run.failed, threshold, "<=", "requests", limit)


PHANTOM_DEMAND_FACTOR = 1.5
"""How far above the busiest second the load offered the controller's demand may read:
a sub-second tick counts a Poisson stream with ~10% noise at these rates; a reading
timed at the wrong moment (issue 18) read 9x."""


def believed_demand_checks(
    run: LoadRun,
    controller: Sequence[ControllerSample],
    decisions: Sequence[DecisionRecord],
    since: float,
) -> list[Check]:
    """From `since` (epoch seconds) on, the controller believed no demand the load did
    not offer: its demand never far above the busiest second offered, and no capacity
    alert (which only such demand, or load beyond every pool's max, raises). The warm-up
    is left out: a step from no load reads as a rise to the forecast, by design."""
    offered = max((second.sent for second in run.seconds), default=0)
    believed = [s for s in controller if s.demand_rps is not None and s.at >= since]
    peak = max(believed, key=lambda s: s.demand_rps or 0.0, default=None)
    ratio = None if peak is None or not offered else (peak.demand_rps or 0.0) / offered
    alerts = [d for d in decisions if d.decision == "alert capacity" and d.at >= since]
    return [
        Check(
            "controller's demand over the busiest second offered",
            None if ratio is None else round(ratio, 2),
            PHANTOM_DEMAND_FACTOR,
            "<=",
            "x",
            None
            if ratio is not None and ratio <= PHANTOM_DEMAND_FACTOR
            else "no controller sample read demand"
            if ratio is None or peak is None
            else f"the controller read {peak.demand_rps:.0f} rps at "
            f"t = {peak.at - run.started_at:.1f} s; the load never offered more than "
            f"{offered} in a second",
        ),
        Check(
            "capacity alerts",
            len(alerts),
            0,
            "<=",
            "alerts",
            None
            if not alerts
            else f"at t = {alerts[0].at - run.started_at:.1f} s: {alerts[0].reason}",
        ),
    ]


def event_at(at: float | None, started_at: float, label: str) -> list[Event]:
    """An event for the report if it happened (`at` in epoch seconds)."""
    return [] if at is None else [Event(at - started_at, label)]


def seconds_after(at: float | None, since: float) -> float | None:
    return None if at is None else round(at - since, 3)


def _pool_of(server: str) -> str | None:
    try:
        return pool_of_server(server)
    except ValueError:
        return None
