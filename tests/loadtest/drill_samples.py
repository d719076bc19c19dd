"""Hand-made recordings of drills, for assessing a drill without a stack: a load run
along the drill's own trace, gateway and controller samples as functions of time,
and the setup the short drill config (drills-short.yaml) gives each drill."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from loadtest.drills import DRILLS
from loadtest.drills.observed import Observed
from loadtest.drills.outcome import Outcome
from loadtest.drills.settings import load_drill_settings, stack_config
from loadtest.drills.setup import Setup
from loadtest.results import LoadRun, ScheduleCheck, Target, per_second
from loadtest.timeline import ControllerSample, GatewaySample
from loadtest.traces import Trace, arrivals
from spillover.controller.ledger import DecisionRecord, WindowRow

SHORT = Path(__file__).parent / "drills-short.yaml"
STARTED_AT = 1_000_000.0
"""Epoch seconds of every hand-made run's t = 0."""
SAMPLE_STEP_S = 0.1
F = TypeVar("F")


def setup(kind: str) -> Setup[Any]:
    """The setup `spillover drill <kind> --config drills-short.yaml` runs with."""
    settings = load_drill_settings(SHORT)
    section = DRILLS[kind].section(settings)
    return Setup(stack_config(settings, section, f"{kind}.overrides"), section, settings.stack)


def control_setup(kind: str) -> Setup[Any]:
    """The setup of that drill's control run."""
    _, control = DRILLS[kind].setups(load_drill_settings(SHORT), control=True)
    assert control is not None
    return control


def load_run(
    trace: Trace,
    slow: Iterable[tuple[float, float, float]] = (),
    failed: Iterable[float] = (),
    steady_ms: float = 10.0,
    stopped_at: float | None = None,
) -> LoadRun:
    """The trace's requests, all answered in steady_ms but for the slow windows
    (from_s, until_s, latency_ms) and a failed request at each of the failed offsets;
    with stopped_at, only those up to then, as when Ctrl-C ends a run."""
    planned = arrivals(trace, seed=0)
    end_s = trace.duration_s if stopped_at is None else stopped_at
    intended = planned[planned <= end_s]
    latency_ms = np.full(len(intended), steady_ms)
    for since, until, ms in slow:
        latency_ms[(intended >= since) & (intended < until)] = ms
    ok = np.ones(len(intended), dtype=bool)
    for at in failed:
        ok[int(np.searchsorted(intended, at))] = False
    latency_s = np.where(ok, latency_ms / 1000.0, np.nan)
    count = len(intended)
    return LoadRun(
        trace=trace,
        target=Target("127.0.0.1:1", "grpc"),
        started_at=STARTED_AT,
        intended_s=intended,
        latency_s=latency_s,
        ok=ok,
        errors={} if ok.all() else {"UNAVAILABLE": int((~ok).sum())},
        error_examples=[],
        schedule=ScheduleCheck(True, count, count, 1.0, 2.0, 0.0, 0.3, None),
        seconds=per_second(trace, end_s, intended, latency_s, ok),
        lag_s=np.zeros(count),
        end_s=end_s,
        ended_by=None if stopped_at is None else "stop",
        planned_total=len(planned),
    )


def gateway(
    until_s: float,
    statuses: Callable[[float], dict[str, str]],
    rates: Callable[[float], dict[str, float]],
    server_rates: Callable[[float], dict[str, float]] = lambda t: {},
) -> list[GatewaySample]:
    """Samples every SAMPLE_STEP_S from t = 0: each server's status, and responses per
    pool counted up at rates(t) requests per second (per server at server_rates(t))."""
    samples, counted, by_server = [], dict.fromkeys(rates(0.0), 0.0), {}
    for t in np.arange(0.0, until_s + SAMPLE_STEP_S, SAMPLE_STEP_S):
        for pool, rps in rates(float(t)).items():
            counted[pool] = counted.get(pool, 0.0) + rps * SAMPLE_STEP_S
        for server, rps in server_rates(float(t)).items():
            by_server[server] = by_server.get(server, 0.0) + rps * SAMPLE_STEP_S
        samples.append(
            GatewaySample(
                STARTED_AT + float(t),
                statuses(float(t)),
                {pool: int(total) for pool, total in counted.items()},
                {server: int(total) for server, total in by_server.items()},
            )
        )
    return samples


def controller(
    until_s: float,
    mode: Callable[[float], str],
    sizes: Callable[[float], dict[str, int]],
    demand: Callable[[float], float | None] = lambda t: None,
) -> list[ControllerSample]:
    """A tick every second from 1 s before t = 0: mode(t), demand(t), and each pool
    desired and ready at sizes(t)."""
    return [
        ControllerSample(
            STARTED_AT + t,
            mode(t),
            demand(t),
            {pool: {"desired": n, "ready": n} for pool, n in sizes(t).items()},
        )
        for t in np.arange(-1.0, until_s + 1.0, 1.0).tolist()
    ]


def decision(t: float, kind: str, text: str) -> DecisionRecord:
    return DecisionRecord(STARTED_AT + t, kind, text, "a reason")


def observed(
    run: LoadRun,
    gateway_samples: Sequence[GatewaySample],
    controller_samples: Sequence[ControllerSample],
    decisions: Sequence[DecisionRecord],
    done: dict[str, float],
    facts: F,
    charges: Sequence[WindowRow] = (),
    actions: Sequence[str] | None = None,
) -> Observed[F]:
    """A recording whose actions were done at the given offsets from t = 0; of the
    actions planned (default: those done), any not done never happened."""
    return Observed(
        run,
        list(gateway_samples),
        list(controller_samples),
        sorted(decisions, key=lambda record: record.at),
        list(charges),
        5.0,
        {label: STARTED_AT + t for label, t in done.items()},
        facts,
        tuple(done) if actions is None else tuple(actions),
    )


def assert_judged(outcome: Outcome, name: str, passed: bool) -> None:
    """The named check has the verdict expected of it; a failed one says what limits it;
    and no other check failed, so the recording's change moved that check alone."""
    check = outcome.check(name)
    assert check.passed is passed, check
    if not passed:
        assert check.limit, f"{name} failed without saying what limits it"
    others = [other.name for other in outcome.checks if other.name != name and not other.passed]
    assert others == [], "a change meant for one check moved another"
