"""`spillover load`: offer open-loop load along a trace, then write a report with a verdict.

By default the load goes to the local stack's gateway, and the gateway and the
controller are sampled while it runs, so the report shows per second where the
traffic went, how many replicas were ready and which mode the controller was in.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from loadtest.report import Check, Report
from loadtest.report_files import write_report
from loadtest.results import LoadRun, Target
from loadtest.scheduler import run_load
from loadtest.timeline import (
    ControllerSample,
    ControllerSampler,
    GatewaySample,
    GatewaySampler,
    TimelineRow,
    build_timeline,
)
from loadtest.traces import Trace, TraceError, constant, diurnal, flash_sale, ramp, replay
from spillover.arguments import non_negative_float, positive_float, positive_int
from spillover.config import load_config
from spillover.config_cli import LOCAL_DEFAULT
from spillover.controller.cli import DATABASE_FILE
from spillover.errors import SpilloverError
from spillover.local.cli import DEFAULT_RUN_DIR
from spillover.local.stack import LocalStack
from spillover.model.build import DEFAULT_REPO, model_sizes
from spillover.tables import format_table

TRACES = ("constant", "ramp", "diurnal", "flash-sale", "replay")
DEFAULT_DURATION_S = 30.0
PEAK_FACTOR = {"ramp": 4.0, "diurnal": 5.0, "flash-sale": 10.0}
"""--peak-rps when not given, as a multiple of --rps: a flash sale is 11.11's x10."""
CONNECT_TIMEOUT_S = 2.0
ERRORS_SHOWN = 3


class LoadError(SpilloverError):
    """`spillover load` cannot start; the message says what to change."""


def register(commands: argparse._SubParsersAction) -> None:
    load = commands.add_parser(
        "load",
        help="offer open-loop load along a trace and write a report with a verdict",
        description=(
            "Send requests open loop (on schedule, never waiting for answers) along a "
            "trace, to the local stack's gateway or to --url, and write a report: per "
            "second rates and latency, where traffic went, replicas, controller mode."
        ),
    )
    load.add_argument("--trace", choices=TRACES, default="constant", help="load shape (constant)")
    load.add_argument(
        "--rps",
        type=non_negative_float,
        default=100.0,
        help="base rate: the constant rate, the ramp's start, the diurnal night trough, "
        "the load around a flash sale (100)",
    )
    load.add_argument(
        "--peak-rps",
        type=non_negative_float,
        help="the ramp's end (4x --rps), the diurnal evening peak (5x), the flash-sale peak (10x)",
    )
    load.add_argument(
        "--duration",
        type=positive_float,
        help=f"seconds ({DEFAULT_DURATION_S:g}); with replay, a cut of the CSV's trace",
    )
    load.add_argument("--csv", type=Path, help="replay: a CSV of `seconds,rps` lines")
    load.add_argument("--start", type=non_negative_float, help="flash-sale start, s (duration / 4)")
    load.add_argument(
        "--max-requests", type=positive_int, default=100_000, help="at most this many (100000)"
    )
    load.add_argument("--protocol", choices=("grpc", "http"), default="grpc", help="(grpc)")
    load.add_argument(
        "--url", help="host:port to load (default: the local stack's gateway for --protocol)"
    )
    load.add_argument(
        "--run-dir",
        type=Path,
        default=DEFAULT_RUN_DIR,
        help="the local stack to load and sample (default: %(default)s)",
    )
    load.add_argument(
        "--model-repo",
        type=Path,
        default=DEFAULT_REPO,
        help="the model whose users and items requests are drawn from (default: %(default)s)",
    )
    load.add_argument(
        "--slo-ms", type=positive_float, help="p99 latency goal (default: the packaged config's)"
    )
    load.add_argument("--request-timeout", type=positive_float, default=10.0, help="seconds (10)")
    load.add_argument("--reports-dir", type=Path, default=Path("reports"), help="(reports)")
    load.add_argument("--seed", type=int, default=0, help="arrivals and requests (0)")
    load.set_defaults(func=_load)


def build_trace(args: argparse.Namespace) -> Trace:
    """The trace the flags describe; flags that do not apply to it are refused."""
    name = args.trace
    if args.csv is not None and name != "replay":
        raise TraceError("--csv goes with --trace replay")
    if args.start is not None and name != "flash-sale":
        raise TraceError("--start goes with --trace flash-sale")
    if args.peak_rps is not None and name in ("constant", "replay"):
        raise TraceError(f"--peak-rps does not apply to --trace {name}")
    if name == "replay":
        if args.csv is None:
            raise TraceError("--trace replay needs --csv PATH (lines of `seconds,rps`)")
        recorded = replay(args.csv)
        return recorded if args.duration is None else recorded.clipped(args.duration)
    duration = DEFAULT_DURATION_S if args.duration is None else args.duration
    peak = args.rps * PEAK_FACTOR.get(name, 1.0) if args.peak_rps is None else args.peak_rps
    if name == "constant":
        return constant(args.rps, duration)
    if name == "ramp":
        return ramp(args.rps, peak, duration)
    if name == "diurnal":
        if peak <= 0 or args.rps > peak:
            raise TraceError(
                f"--peak-rps ({peak:g}) must be above 0 and at least --rps, the night "
                f"trough ({args.rps:g})"
            )
        return diurnal(peak, duration, trough_share=args.rps / peak)
    start = duration / 4 if args.start is None else args.start
    if start >= duration:
        raise TraceError(f"--start ({start:g} s) must be before the end (--duration {duration:g})")
    return flash_sale(args.rps, peak, duration, start)


def _load(args: argparse.Namespace) -> int:
    trace = build_trace(args)
    stack = LocalStack(args.run_dir)
    stack_runs = stack.run_dir.load() is not None
    target = Target(args.url or _gateway(stack, stack_runs, args.protocol), args.protocol)
    _check_listening(target, from_stack=args.url is None)
    n_users, n_items = _model_sizes(args.model_repo)
    slo_ms = args.slo_ms or load_config(LOCAL_DEFAULT).slo.p99_latency_ms
    print(
        f"load: {trace.name}, {trace.expected_requests():.0f} requests planned over "
        f"{trace.duration_s:g} s (peak {trace.peak_rps:g} rps) to {target.url} "
        f"({target.protocol}); Ctrl-C stops early and still reports"
    )
    stop = threading.Event()
    gateway: list[GatewaySample] = []
    controller: list[ControllerSample] = []
    with contextlib.ExitStack() as running:
        running.enter_context(_stop_on_interrupt(stop))
        if stack_runs:
            gateway = running.enter_context(GatewaySampler(stack.run_dir.gateway_socket)).samples
            controller = running.enter_context(
                ControllerSampler(stack.run_dir.path / DATABASE_FILE)
            ).samples
        run = run_load(
            target,
            trace,
            n_users=n_users,
            n_items=n_items,
            max_requests=args.max_requests,
            seed=args.seed,
            request_timeout_s=args.request_timeout,
            stop=stop,
        )
    report = load_report(run, build_timeline(run, gateway, controller), slo_ms, stop.is_set())
    report.settings = _settings(args, trace, target, n_users, n_items, slo_ms)
    if not stack_runs:
        report.notes.append(
            f"no local stack in {stack.run_dir.path}: no per-pool share, replicas or mode"
        )
    directory = write_report(report, args.reports_dir)
    print(format_summary(run))
    for check in report.checks:
        if not check.passed and check.limit:
            print(f"{check.name}: {check.limit}")
    print(f"verdict: {report.verdict}; report in {directory}")
    return 0 if report.verdict == "pass" else 1


def load_report(
    run: LoadRun, timeline: list[TimelineRow], slo_ms: float, interrupted: bool
) -> Report:
    """The checks, figures and notes of one load run (settings are the caller's)."""
    schedule = run.schedule
    p99 = run.percentile_ms(99)
    failures = ", ".join(f"{kind} x{count}" for kind, count in _common(run.errors))
    checks = [
        Check(
            "p99 latency",
            p99,
            slo_ms,
            "<=",
            "ms",
            limit=_latency_limit(run, p99, slo_ms),
        ),
        Check(
            "failed requests",
            float(run.failed),
            0,
            "<=",
            "requests",
            limit=f"{run.failed} of {run.sent} failed: {failures}" if run.failed else None,
        ),
        Check("schedule kept", 1.0 if schedule.kept else 0.0, 1, ">=", "", schedule.reason),
    ]
    planned_rps = schedule.planned / run.end_s if run.end_s > 0 else 0.0
    figures: dict[str, float | int | str | None] = {
        "planned": schedule.planned,
        "sent": run.sent,
        "ok": run.succeeded,
        "failed": run.failed,
        "planned_rps": round(planned_rps, 1),
        "achieved_rps": round(run.achieved_rps, 1),
        "p50_ms": run.percentile_ms(50),
        "p99_ms": p99,
        "p999_ms": run.percentile_ms(99.9),
        "send_lag_p99_ms": round(schedule.lag_p99_ms, 2),
        "send_lag_max_ms": round(schedule.lag_max_ms, 2),
        "late_sends_share": round(schedule.late_share, 4),
        "generator_cpu_cores": round(schedule.client_cpu_share, 2),
        "max_in_flight": schedule.max_in_flight,
    }
    notes = []
    if interrupted:
        notes.append(f"stopped early (Ctrl-C) at t = {run.end_s:.1f} s")
    elif run.end_s < run.trace.duration_s:
        notes.append(
            f"--max-requests cut the run at t = {run.end_s:.1f} s of {run.trace.duration_s:g} s"
        )
    if run.error_examples:
        notes.append("first errors: " + " | ".join(run.error_examples[:ERRORS_SHOWN]))
    return Report(
        kind="load",
        title=(
            f"Load: {run.trace.name}, peak {run.trace.peak_rps:g} rps for "
            f"{run.trace.duration_s:g} s to {run.target.url} ({run.target.protocol})"
        ),
        started_at=run.started_at,
        slo_p99_ms=slo_ms,
        checks=checks,
        figures=figures,
        timeline=timeline,
        notes=notes,
    )


def format_summary(run: LoadRun) -> str:
    def ms(value: float | None) -> object:
        return "-" if value is None else round(value, 1)

    headers = ["sent", "ok", "failed", "achieved rps", "p50 ms", "p99 ms", "schedule kept"]
    row = [
        run.sent,
        run.succeeded,
        run.failed,
        round(run.achieved_rps, 1),
        ms(run.percentile_ms(50)),
        ms(run.percentile_ms(99)),
        "yes" if run.schedule.kept else "no",
    ]
    return format_table(headers, [row])


def _latency_limit(run: LoadRun, p99: float | None, slo_ms: float) -> str | None:
    if p99 is None:
        return "no request succeeded, so there is no latency to measure"
    if p99 <= slo_ms:
        return None
    if not run.schedule.kept:
        return "the generator could not keep its schedule (see that check), so latency is suspect"
    return (
        f"at {run.achieved_rps:.0f} rps the target answered slower than {slo_ms:g} ms for over "
        "1% of requests: it lacks capacity for this load (see replicas and share per second)"
    )


def _common(errors: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(errors.items(), key=lambda item: -item[1])


def _gateway(stack: LocalStack, stack_runs: bool, protocol: str) -> str:
    if not stack_runs:
        raise LoadError(
            f"no local stack in {stack.run_dir.path}: start one with `spillover local up`, "
            "pass its --run-dir, or load another target with --url host:port"
        )
    return stack.gateway_endpoints[protocol]


def _check_listening(target: Target, from_stack: bool) -> None:
    host, _, port = target.url.rpartition(":")
    if not host or not port.isdigit():
        raise LoadError(f"--url must be host:port, got {target.url!r}")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as error:
        hint = (
            "the local stack's gateway is not running: see `spillover local status`"
            if from_stack
            else "check --url and --protocol"
        )
        raise LoadError(
            f"nothing answers on {target.url} ({target.protocol}): {error}; {hint}"
        ) from error


def _model_sizes(repo: Path) -> tuple[int, int]:
    try:
        return model_sizes(repo)
    except (OSError, KeyError, ValueError) as error:
        raise LoadError(
            f"no built model in {repo} to draw users and items from ({error}); run "
            f"`spillover model build --repo {repo}` or pass --model-repo"
        ) from error


@contextlib.contextmanager
def _stop_on_interrupt(stop: threading.Event) -> Iterator[None]:
    """The first Ctrl-C ends the load and still writes the report; a second one aborts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _settings(
    args: argparse.Namespace,
    trace: Trace,
    target: Target,
    n_users: int,
    n_items: int,
    slo_ms: float,
) -> dict[str, Any]:
    return {
        "trace": args.trace,
        "rps": args.rps,
        "peak_rps": trace.peak_rps,
        "duration_s": trace.duration_s,
        "points": [list(point) for point in trace.points],
        "start_s": args.start,
        "csv": None if args.csv is None else str(args.csv),
        "max_requests": args.max_requests,
        "protocol": target.protocol,
        "url": target.url,
        "seed": args.seed,
        "slo_ms": slo_ms,
        "request_timeout_s": args.request_timeout,
        "n_users": n_users,
        "n_items": n_items,
    }
