"""`spillover local ...`: bring the local stack up, scale pools, route, inspect, tear down."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from spillover.arguments import non_negative_int, positive_float, positive_int
from spillover.config import load_config
from spillover.config_cli import DEFAULT_RUN_DIR, LOCAL_DEFAULT
from spillover.drivers.local.errors import StackError
from spillover.drivers.local.layout import LocalLayout, LocalPool
from spillover.local.stack import LocalStack
from spillover.model.build import DEFAULT_REPO, ensure_model
from spillover.tables import format_table


def register(commands: argparse._SubParsersAction) -> None:
    local = commands.add_parser("local", help="the local stack: Triton pools behind HAProxy")
    local.add_argument(
        "--run-dir",
        type=Path,
        default=DEFAULT_RUN_DIR,
        help="state, logs and sockets of the stack (default: %(default)s, or $SPILLOVER_RUN_DIR)",
    )
    actions = local.add_subparsers(dest="action", required=True, metavar="ACTION")

    up = actions.add_parser(
        "up", help="start the gateway, the pools and the controller that sizes them"
    )
    up.add_argument(
        "--config",
        type=Path,
        default=LOCAL_DEFAULT,
        help="spillover.yaml: pools, prices, SLO, policy, budget (default: the packaged one)",
    )
    up.add_argument(
        "--no-controller", action="store_true", help="size pools by hand (local scale/weights)"
    )
    up.add_argument(
        "--private", type=non_negative_int, help="with --no-controller: private replicas (2)"
    )
    up.add_argument(
        "--burst", type=non_negative_int, help="with --no-controller: burst replicas (0)"
    )
    up.add_argument(
        "--max-replicas", type=positive_int, help="with --no-controller: slots per pool (4)"
    )
    up.add_argument(
        "--port-base", type=int, default=8000, help="gateway HTTP port; others follow (8000)"
    )
    up.add_argument("--model-repo", type=Path, default=DEFAULT_REPO)
    up.add_argument("--timeout", type=float, default=120.0, help="readiness timeout, seconds")
    up.set_defaults(func=_up)

    scale = actions.add_parser("scale", help="set a pool's replica count")
    scale.add_argument("pool")
    scale.add_argument("replicas", type=non_negative_int)
    scale.add_argument("--timeout", type=float, default=120.0, help="readiness timeout, seconds")
    scale.set_defaults(func=_scale)

    weights = actions.add_parser(
        "weights", help="set pool traffic shares, e.g. private=80 burst=20"
    )
    weights.add_argument("shares", nargs="+", type=_share, metavar="POOL=SHARE")
    weights.set_defaults(func=_weights)

    interrupt = actions.add_parser(
        "interrupt",
        help="give a replica a spot interruption notice: out of rotation now, a "
        "replacement starts, and it is stopped once idle (when the notice runs out at "
        "the latest)",
    )
    interrupt.add_argument("replica", help="e.g. burst-0 (see `local status`)")
    interrupt.add_argument(
        "--in",
        dest="seconds",
        type=positive_float,
        default=120.0,
        metavar="SECONDS",
        help="until it is stopped (default: %(default)g, as EC2 gives a spot instance); "
        "the controller's next converge of its pool after that stops it",
    )
    interrupt.set_defaults(func=_interrupt)

    actions.add_parser("status", help="pools, replicas, ports, PIDs, readiness").set_defaults(
        func=_status
    )
    actions.add_parser("down", help="stop every process of the stack").set_defaults(func=_down)


def _up(args: argparse.Namespace) -> int:
    try:
        layout = LocalLayout(_pools(args), args.port_base)
    except ValueError as error:
        raise StackError(str(error)) from error
    stack = LocalStack(args.run_dir)
    stack.up(layout, ensure_model(args.model_repo), ready_timeout=args.timeout)
    endpoints = stack.gateway_endpoints
    print(
        f"gateway: http {endpoints['http']}  grpc {endpoints['grpc']}"
        f"  metrics {endpoints['metrics']}"
    )
    _print_status(stack)
    if not args.no_controller:
        pid = stack.start_controller(args.config)
        print(
            f"controller: pid {pid}, sizing pools per {args.config}; log in "
            f"{stack.run_dir.logs / 'controller.log'}\n"
            "see `spillover status` and `spillover spend`"
        )
    return 0


def _pools(args: argparse.Namespace) -> tuple[LocalPool, ...]:
    """By hand: private and burst as asked. Otherwise the config's local pools."""
    if args.no_controller:
        slots = args.max_replicas or 4
        private = 2 if args.private is None else args.private
        burst = args.burst or 0
        return (
            LocalPool("private", private, max(slots, private)),
            LocalPool("burst", burst, max(slots, burst)),
        )
    if any(value is not None for value in (args.private, args.burst, args.max_replicas)):
        raise StackError("--private, --burst and --max-replicas go with --no-controller")
    return config_pools(args.config)


def config_pools(path: Path) -> tuple[LocalPool, ...]:
    """A config's local pools, each starting at its minimum, with a slot for each
    replica it may grow to, and its replicas held to the pool's capacity_rps."""
    pools = tuple(
        LocalPool(pool.name, pool.min_replicas, pool.max_replicas, pool.capacity_rps)
        for pool in load_config(path).pools
        if pool.driver == "local"
    )
    if not pools:
        raise StackError(f"{path} has no pool with driver 'local'")
    return pools


def _scale(args: argparse.Namespace) -> int:
    stack = LocalStack(args.run_dir)
    stack.scale(args.pool, args.replicas, ready_timeout=args.timeout)
    _print_status(stack)
    return 0


def _weights(args: argparse.Namespace) -> int:
    shares = dict(args.shares)
    if len(shares) != len(args.shares):
        raise StackError("each pool may be named once")
    applied = LocalStack(args.run_dir).set_weights(shares)
    print("pool shares: " + " ".join(f"{pool}={share}" for pool, share in shares.items()))
    serving = [(server, weight) for server, weight in sorted(applied.items()) if weight > 0]
    print(format_table(["server", "weight"], serving) if serving else "no ready server")
    return 0


def _status(args: argparse.Namespace) -> int:
    _print_status(LocalStack(args.run_dir))
    return 0


def _interrupt(args: argparse.Namespace) -> int:
    stops_at = LocalStack(args.run_dir).notify_interruption(args.replica, args.seconds)
    clock = time.strftime("%H:%M:%S", time.gmtime(stops_at))
    print(
        f"{args.replica} has an interruption notice: out of rotation now, "
        f"stopped once idle, by {clock} UTC at the latest"
    )
    return 0


def _down(args: argparse.Namespace) -> int:
    stopped = LocalStack(args.run_dir).down()
    print(f"stopped {stopped} process group(s)")
    return 0


def _print_status(stack: LocalStack) -> None:
    now = time.time()
    rows = [
        [
            row.pool,
            row.replica,
            f"{row.ports.http}/{row.ports.grpc}/{row.ports.metrics}",
            row.pid if row.pid is not None else "-",
            "yes" if row.ready else ("starting" if row.running else "no"),
            row.gateway_state,
            row.weight if row.weight is not None else "-",
            _notice(row.interrupt_at, now),
        ]
        for row in stack.status()
        if row.pid is not None or row.gateway_state not in ("MAINT", "?")
    ]
    headers = ["pool", "replica", "http/grpc/metrics", "pid", "ready", "gateway", "weight"]
    if not any(row[-1] for row in rows):
        rows = [row[:-1] for row in rows]  # no notice anywhere: no column for it
    else:
        headers.append("notice")
    print(format_table(headers, rows) if rows else "no replicas running")


def _notice(interrupt_at: float | None, now: float) -> str:
    if interrupt_at is None:
        return ""
    left = interrupt_at - now
    if left > 0:
        return f"stops once idle, in {math.ceil(left):.0f} s at the latest"
    return f"notice ran out {-left:.0f} s ago: stopped at the next converge"


def _share(text: str) -> tuple[str, int]:
    pool, separator, share = text.partition("=")
    if not separator or not pool or not share.isdigit():
        raise argparse.ArgumentTypeError(f"expected POOL=SHARE with a whole number, got {text!r}")
    return pool, int(share)
