"""What the gateway and the controller did during a load run, second by second.

Two samplers poll while the load runs: the gateway's ``show stat`` (server states and
per-pool response counters) and the controller's saved status in its SQLite ledger.
``build_timeline`` lines their samples up with the run's own per-second figures, so a
report can show, for each second, what was offered, what was answered, where the
gateway sent it, how many replicas were ready and which mode the controller was in.

Samplers are observers: they must never disturb or abort the run they observe, so a
poll that fails (gateway down, database missing or locked) records nothing and the
next poll tries again.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from spillover.controller.ledger import Ledger, has_schema
from spillover.drivers.haproxy import HTTP_BACKEND, RuntimeApi
from spillover.drivers.haproxy_runtime import GatewayStats

if TYPE_CHECKING:
    # Only the type: a timeline reads a finished run's figures, so it (and report.py,
    # which reads timelines) need not load the scheduler and its Triton clients.
    from loadtest.results import LoadRun

logger = logging.getLogger(__name__)

GATEWAY_TIMEOUT_S = 0.5
"""Per ``show stat``: a gateway slower than this is as good as absent for a 0.1 s sampler."""

STOP_TIMEOUT_S = 5.0
"""How long stop() waits for the thread: a hung poll must not hang the caller's run."""

MAX_BRACKET_S = 3.0
"""Samples further apart than this describe their neighbours more than the second they
bracket, so that second gets no share rather than a smeared one."""

S = TypeVar("S")


@dataclass(frozen=True)
class GatewaySample:
    at: float
    """Epoch seconds when the stats were read."""
    status_by_server: dict[str, str]
    """Status of each server's row in the HTTP backend, e.g. ``{"private-0": "UP"}``."""
    responses_by_pool: dict[str, int]
    """Cumulative responses per pool over every backend; they restart at 0 with HAProxy."""
    responses_by_server: dict[str, int] = field(default_factory=dict)
    """Cumulative responses per server over every backend (HTTP and gRPC)."""


@dataclass(frozen=True)
class ControllerSample:
    at: float
    """Epoch seconds of the controller's observation (its status ``at``)."""
    mode: str
    demand_rps: float | None
    pools: dict[str, dict[str, Any]]
    """Pool name -> that pool's dict from the controller's status view."""


class _Sampler(Generic[S]):
    """A daemon thread that calls ``_poll`` every interval until ``stop()``.

    The thread never raises: a failed poll is logged at debug level and skipped,
    because one unreadable moment must not end the sampling of a whole run.
    """

    def __init__(self, interval_s: float, name: str) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be positive, not {interval_s}")
        self.interval_s = interval_s
        self.samples: list[S] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start polling (the first poll is immediate); a second call does nothing."""
        if not self._thread.is_alive() and not self._stopping.is_set():
            self._thread.start()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Poll once more, so the end of the run is bracketed, then end the thread.

        Waits at most timeout_s: the thread is a daemon, so one stuck in a poll is
        abandoned rather than allowed to hold up the caller.
        """
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        # A fixed cadence (not interval after each poll) keeps samples evenly spaced
        # even when a poll takes a good part of the interval.
        next_at = time.monotonic()
        try:
            while True:
                self._poll_safely()
                next_at += self.interval_s
                if self._stopping.wait(max(0.0, next_at - time.monotonic())):
                    break
                # Fell behind (a slow poll): skip the missed slots instead of bursting.
                next_at = max(next_at, time.monotonic() - self.interval_s)
            self._poll_safely()
        finally:
            try:
                self._close()
            except Exception as error:  # as above: nothing escapes the thread
                logger.debug("%s: close failed: %s", self._thread.name, error)

    def _poll_safely(self) -> None:
        try:
            sample = self._poll()
        except Exception as error:  # an observer never takes the run it observes down
            logger.debug("%s: poll failed: %s", self._thread.name, error)
            return
        if sample is not None:
            self.samples.append(sample)

    def _poll(self) -> S | None:
        raise NotImplementedError

    def _close(self) -> None:
        """Release what the thread opened; runs in the thread."""


class GatewaySampler(_Sampler[GatewaySample]):
    """Polls the gateway's runtime API (unix socket path or ``host:port``)."""

    def __init__(self, address: Path | str, interval_s: float = 0.1) -> None:
        super().__init__(interval_s, name="gateway-sampler")
        self.api = RuntimeApi(address, timeout_s=GATEWAY_TIMEOUT_S)

    def __enter__(self) -> GatewaySampler:
        self.start()
        return self

    def _poll(self) -> GatewaySample | None:
        stats = self.api.stats()
        return gateway_sample(stats, time.time())


def gateway_sample(stats: GatewayStats, at: float) -> GatewaySample:
    """One sample from one ``show stat`` answer read at ``at``."""
    # The controller's own per-pool totals, so a report's shares match what it saw.
    responses = {pool: total for pool, (total, _) in stats.pool_totals().items()}
    by_server: dict[str, int] = {}
    for row in stats.servers:
        by_server[row.server] = by_server.get(row.server, 0) + row.responses_total
    return GatewaySample(
        at=at,
        status_by_server={
            row.server: row.status for row in stats.servers if row.backend == HTTP_BACKEND
        },
        responses_by_pool=responses,
        responses_by_server=by_server,
    )


class ControllerSampler(_Sampler[ControllerSample]):
    """Reads the controller's last saved status from its ledger file.

    The file is opened only once it exists and carries a schema: opening an empty file
    through ``Ledger`` would create the schema with a default window and could then
    conflict with the window the starting controller asks for.
    """

    def __init__(self, database: Path, interval_s: float = 0.25) -> None:
        super().__init__(interval_s, name="controller-sampler")
        self.database = Path(database)
        self._ledger: Ledger | None = None
        self._last_at: float | None = None

    def __enter__(self) -> ControllerSampler:
        self.start()
        return self

    def _poll(self) -> ControllerSample | None:
        ledger = self._open()
        if ledger is None:
            return None
        state = ledger.load_controller_state()
        if state is None:
            return None
        sample = controller_sample(state.status, state.at)
        # The controller saves once per tick; polling faster must not repeat a tick.
        if sample is None or sample.at == self._last_at:
            return None
        self._last_at = sample.at
        return sample

    def _open(self) -> Ledger | None:
        if self._ledger is None and has_schema(self.database):
            self._ledger = Ledger(self.database, window_seconds=None)
        return self._ledger

    def _close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None


def controller_sample(status_json: str, saved_at: float) -> ControllerSample | None:
    """One sample from the status JSON the controller saved; None if it cannot be read."""
    try:
        status = json.loads(status_json)
        pools = {str(pool["pool"]): dict(pool) for pool in status.get("pools", [])}
        demand = status.get("demand_rps")
        return ControllerSample(
            at=float(status.get("at", saved_at)),
            mode=str(status["mode"]),
            demand_rps=None if demand is None else float(demand),
            pools=pools,
        )
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        logger.debug("unreadable controller status: %s", error)
        return None


@dataclass(frozen=True)
class TimelineRow:
    t: int
    """Whole second from t = 0 (the row covers [t, t + 1))."""
    planned_rps: float
    sent: int
    ok: int
    failed: int
    p50_ms: float | None
    p99_ms: float | None
    share: dict[str, float]
    """Pool -> share of the gateway's responses in that second; sums to 1, or {} when
    unknown (no bracketing samples, a gateway restart, or no responses at all)."""
    replicas: dict[str, int]
    """Pool -> ready replicas per the last controller sample by the end of that second."""
    mode: str | None


def build_timeline(
    run: LoadRun,
    gateway: Sequence[GatewaySample] = (),
    controller: Sequence[ControllerSample] = (),
) -> list[TimelineRow]:
    """One row per whole second of the run, from t = 0 to its last second."""
    by_second = {stats.second: stats for stats in run.seconds}
    if not by_second:
        return []
    gateway = sorted(gateway, key=lambda sample: sample.at)
    controller = sorted(controller, key=lambda sample: sample.at)
    rows = []
    for t in range(max(by_second) + 1):
        begin, end = run.started_at + t, run.started_at + t + 1
        stats = by_second.get(t)
        state = _last_at_or_before(controller, end)
        rows.append(
            TimelineRow(
                t=t,
                # A second the generator did not report sent nothing, but was still planned.
                planned_rps=stats.planned_rps
                if stats
                else run.trace.expected_requests(float(t), float(t + 1)),
                sent=stats.sent if stats else 0,
                ok=stats.ok if stats else 0,
                failed=stats.failed if stats else 0,
                p50_ms=stats.p50_ms if stats else None,
                p99_ms=stats.p99_ms if stats else None,
                share=_share(gateway, begin, end),
                replicas=_ready_replicas(state),
                mode=state.mode if state else None,
            )
        )
    return rows


def _share(samples: Sequence[GatewaySample], begin: float, end: float) -> dict[str, float]:
    """Each pool's part of the responses between the samples bracketing [begin, end]."""
    first = last = None
    for index, sample in enumerate(samples):
        if sample.at <= begin:
            first = index
        if sample.at >= end:
            last = index
            break
    if first is None or last is None or samples[last].at - samples[first].at > MAX_BRACKET_S:
        return {}
    bracket = samples[first : last + 1]
    for before, after in pairwise(bracket):
        # HAProxy's counters begin again at 0 when it restarts: any drop means the
        # difference mixes two processes' counts and says nothing about this second.
        if any(
            after.responses_by_pool.get(pool, 0) < n for pool, n in before.responses_by_pool.items()
        ):
            return {}
    start, stop = bracket[0].responses_by_pool, bracket[-1].responses_by_pool
    served = {pool: stop.get(pool, 0) - start.get(pool, 0) for pool in {**start, **stop}}
    total = sum(served.values())
    if total <= 0:
        return {}
    ordered = list(dict.fromkeys([*start, *stop]))
    return {pool: served[pool] / total for pool in ordered}


def _last_at_or_before(
    samples: Sequence[ControllerSample], moment: float
) -> ControllerSample | None:
    found = None
    for sample in samples:
        if sample.at > moment:
            break
        found = sample
    return found


def _ready_replicas(sample: ControllerSample | None) -> dict[str, int]:
    if sample is None:
        return {}
    ready = {}
    for pool, view in sample.pools.items():
        value = view.get("ready")
        # A pool the controller could not observe shows no count rather than a false 0.
        if isinstance(value, (int, float)) and math.isfinite(value):
            ready[pool] = int(value)
    return ready
