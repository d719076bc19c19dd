"""`spillover load`: offer open-loop load along a trace, then write a report with a verdict.

By default the load goes to the local stack's gateway, and the gateway and the
controller are sampled while it runs, so the report shows per second where the
traffic went, how many replicas were ready and which mode the controller was in.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import threading
from pathlib import Path
from typing import Any

from loadtest.interrupts import stop_on_interrupt
from loadtest.load_report import format_summary, load_report
from loadtest.report import EXIT_CODES_HELP
from loadtest.report_files import write_report
from loadtest.results import Target
from loadtest.scheduler import PlanTooLargeError, check_plan_size, run_load
from loadtest.timeline import (
    ControllerSample,
    ControllerSampler,
    GatewaySample,
    GatewaySampler,
    build_timeline,
)
from loadtest.traces import (
    Trace,
    TraceError,
    constant,
    diurnal,
    draw_arrivals,
    flash_sale,
    ramp,
    replay,
)
from spillover.arguments import non_negative_float, positive_float, positive_int
from spillover.config import load_config
from spillover.config_cli import LOCAL_DEFAULT
from spillover.controller.cli import DATABASE_FILE
from spillover.errors import SpilloverError
from spillover.local.cli import DEFAULT_RUN_DIR
from spillover.local.stack import LocalStack
from spillover.model.build import DEFAULT_REPO, model_sizes

TRACES = ("constant", "ramp", "diurnal", "flash-sale", "replay")
DEFAULT_DURATION_S = 30.0
PEAK_FACTOR = {"ramp": 4.0, "diurnal": 5.0, "flash-sale": 10.0}
"""--peak-rps when not given, as a multiple of --rps: a flash sale is 11.11's x10."""
CONNECT_TIMEOUT_S = 2.0


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
        epilog=EXIT_CODES_HELP + ".",
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
        "--max-requests",
        type=positive_int,
        help="send at most this many requests (default: the trace's whole plan); a cap "
        "below the plan ends the run early, and the report says so",
    )
    load.add_argument(
        "--time-limit",
        type=positive_float,
        help="send nothing intended after this many seconds of the trace (default: none); "
        "a limit before the trace's end ends the run early, and the report says so",
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
    try:
        check_plan_size(trace, args.max_requests, args.time_limit)
    except PlanTooLargeError as error:
        raise LoadError(f"{error} (--max-requests N, --time-limit S)") from None
    stack = LocalStack(args.run_dir)
    stack_runs = stack.run_dir.load() is not None
    target = Target(args.url or _gateway(stack, stack_runs, args.protocol), args.protocol)
    _check_listening(target, from_stack=args.url is None)
    n_users, n_items = _model_sizes(args.model_repo)
    slo_ms = args.slo_ms or load_config(LOCAL_DEFAULT).slo.p99_latency_ms
    print(_announcement(args, trace, target))
    stop = threading.Event()
    gateway: list[GatewaySample] = []
    controller: list[ControllerSample] = []
    with contextlib.ExitStack() as running:
        running.enter_context(stop_on_interrupt(stop))
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
            time_limit_s=args.time_limit,
            seed=args.seed,
            request_timeout_s=args.request_timeout,
            stop=stop,
        )
    report = load_report(run, build_timeline(run, gateway, controller), slo_ms)
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
    print(f"verdict: {report.verdict_text}; report in {directory}")
    return report.exit_code


def _announcement(args: argparse.Namespace, trace: Trace, target: Target) -> str:
    # Counted (not kept) from the same seeded draw the run makes, so the report's
    # "N planned" is this N.
    planned = draw_arrivals(trace, args.seed, max_requests=0).total
    text = (
        f"load: {trace.name}, {planned} requests planned over {trace.duration_s:g} s "
        f"(peak {trace.peak_rps:g} rps) to {target.url} ({target.protocol}); Ctrl-C "
        "stops early and still reports"
    )
    if args.max_requests is not None and args.max_requests < planned:
        text += f"\n--max-requests {args.max_requests} ends the run before its trace does"
    if args.time_limit is not None and args.time_limit < trace.duration_s:
        text += f"\n--time-limit {args.time_limit:g} s ends the run before its trace does"
    return text


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
        "time_limit_s": args.time_limit,
        "protocol": target.protocol,
        "url": target.url,
        "seed": args.seed,
        "slo_ms": slo_ms,
        "request_timeout_s": args.request_timeout,
        "n_users": n_users,
        "n_items": n_items,
    }
