"""`spillover controller run`, `spillover status`, `spillover spend`."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spillover.config import SpilloverConfig, load_config
from spillover.config_cli import LOCAL_DEFAULT
from spillover.config_cluster import ClusterOperations
from spillover.controller.actuators import Actuators, GatewayActuator
from spillover.controller.bill_report import format_bill
from spillover.controller.cluster import ClusterReporter
from spillover.controller.drift import SpendDrift
from spillover.controller.exporter import Exporter
from spillover.controller.leadership import LeaderElector
from spillover.controller.ledger import Ledger
from spillover.controller.ledger.charges import month_start
from spillover.controller.loop import ControllerLoop
from spillover.controller.observe import Observer
from spillover.controller.prices import PriceFeed
from spillover.controller.reconcile import POOL_TAG, Month, format_reconciled, over, reconcile
from spillover.controller.reports import format_spend, parse_since
from spillover.drivers.aws_prices import AwsBill, AwsPriceError, aws_session, has_credentials
from spillover.drivers.haproxy import RuntimeApi
from spillover.drivers.kube_lease import LeaseLock
from spillover.drivers.kubernetes import ApiObjects
from spillover.drivers.local.state import RunDir
from spillover.drivers.registry import DriverContext, build_drivers
from spillover.errors import SpilloverError
from spillover.tables import format_table

DATABASE_FILE = "controller.db"
logger = logging.getLogger("spillover.controller")


def register(commands: argparse._SubParsersAction, default_run_dir: Path) -> None:
    controller = commands.add_parser("controller", help="the controller loop")
    actions = controller.add_subparsers(dest="action", required=True, metavar="ACTION")
    run = actions.add_parser("run", help="observe, decide, act and record every tick")
    run.add_argument("--config", type=Path, default=LOCAL_DEFAULT, help="spillover.yaml")
    _run_dir_option(run, default_run_dir)
    run.add_argument("--ticks", type=int, default=None, help="stop after this many ticks")
    run.set_defaults(func=_run)

    status = commands.add_parser("status", help="pools, weights, mode, last decisions")
    _database_options(status, default_run_dir)
    status.add_argument("--decisions", type=int, default=8, help="how many to show (8)")
    status.add_argument("--format", choices=["table", "json"], default="table")
    status.set_defaults(func=_status)

    spend = commands.add_parser("spend", help="what each pool cost, from the ledger")
    _database_options(spend, default_run_dir)
    spend.add_argument("--since", default="1h", help="90s, 15m, 1h, 2d, 1w or ISO-8601 (1h)")
    spend.add_argument(
        "--by",
        choices=["pool", "role", "window", "category"],
        default="pool",
        help="category: the bill of quantities per pool (quantity, unit, unit price, "
        "source, amount), $/1k requests per category, used vs idle compute",
    )
    spend.add_argument("--format", choices=["table", "csv", "json"], default="table")
    spend.set_defaults(func=_spend)
    spend_actions = spend.add_subparsers(dest="spend_action", metavar="ACTION")
    check = spend_actions.add_parser(
        "reconcile",
        help="the ledger's burst spend against AWS's bill (Cost Explorer, by spillover:pool)",
    )
    _database_options(check, default_run_dir)
    check.add_argument("--month", required=True, help="the UTC month to compare, YYYY-MM")
    check.add_argument(
        "--max-drift",
        type=float,
        default=None,
        metavar="PCT",
        help="exit 1 when a pool's ledger and bill differ by more than PCT %%",
    )
    check.add_argument("--format", choices=["table", "json"], default="table")
    check.set_defaults(func=_reconcile)


def _run_dir_option(parser: argparse.ArgumentParser, default: Path) -> None:
    parser.add_argument(
        "--run-dir", type=Path, default=default, help="the local stack's run directory"
    )


def _database_options(parser: argparse.ArgumentParser, default_run_dir: Path) -> None:
    parser.add_argument(
        "--config", type=Path, default=LOCAL_DEFAULT, help="spillover.yaml (its ledger)"
    )
    _run_dir_option(parser, default_run_dir)
    parser.add_argument(
        "--db",
        type=Path,
        default=None,
        help="ledger file (default: the config's controller.database, else the run dir's)",
    )


@dataclass(frozen=True)
class DatabaseLocation:
    path: Path
    origin: str
    """Which setting chose the path, for a message about it."""


def database_path(
    config: SpilloverConfig, run_dir: Path, given: Path | None = None
) -> DatabaseLocation:
    """The controller's ledger file: `given` (--db), else the config's, else the run dir's."""
    if given is not None:
        return DatabaseLocation(given, "given by --db")
    if config.controller.database:
        return DatabaseLocation(
            Path(config.controller.database), "set by controller.database in the config"
        )
    return DatabaseLocation(
        run_dir / DATABASE_FILE,
        "the run directory's: neither --db nor the config's controller.database names one",
    )


def _run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    drivers = build_drivers(config.pools, DriverContext(run_dir=args.run_dir))
    gateway = RuntimeApi(config.gateway.runtime_api or RunDir(args.run_dir).gateway_socket)
    database = database_path(config, args.run_dir).path
    database.parent.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(database, window_seconds=config.controller.ledger_window_seconds)
    drift = _spend_drift(config, database)
    exporter = Exporter(
        config,
        spend=lambda: _spend_by_category(database),
        drift=None if drift is None else drift.drift,
    )
    port = exporter.serve(config.controller.metrics_host, config.controller.metrics_port)
    loop = ControllerLoop(
        config,
        # A driver that runs several pools lists its replicas once per tick, not per pool.
        Observer(config, list({id(d): d for d in drivers.values()}.values()), gateway),
        Actuators(drivers, GatewayActuator(gateway)),
        ledger,
        exporter,
        prices=PriceFeed(config),
    )
    if config.controller.cluster is None:
        loop.restore()  # else on taking the Lease: what is stored then, by the last leader
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    background = []
    if drift is not None:
        background.append(
            threading.Thread(target=drift.run, args=(stop,), name="spend-drift", daemon=True)
        )
        background[-1].start()
    election = None
    if config.controller.cluster is not None:
        elector, reporter = _in_cluster(config, config.controller.cluster, ledger)
        loop.leadership, loop.cluster = elector, reporter
        election = threading.Thread(
            target=elector.run, args=(stop,), name="leader-election", daemon=True
        )
        election.start()
    logger.info(
        "controller running: %d pools, tick %gs, metrics on http://%s:%d/metrics, ledger %s",
        len(config.pools),
        config.policy.tick_seconds,
        config.controller.metrics_host,
        port,
        database,
    )
    try:
        loop.run(stop, max_ticks=args.ticks)
    finally:
        stop.set()
        if election is not None:
            election.join(timeout=10)  # it releases the Lease on its way out
        for thread in background:
            thread.join(timeout=10)
        exporter.close()
        ledger.close()
    logger.info("controller stopped")
    return 0


def _spend_drift(config: SpilloverConfig, database: Path) -> SpendDrift | None:
    """The ledger against the bill every `controller.reconcile_every_hours`, if set and
    there are AWS credentials to read the bill with (else said, and not compared)."""
    hours = config.controller.reconcile_every_hours
    if hours is None:
        return None
    session = aws_session()
    if not has_credentials(session):
        logger.warning(
            "controller.reconcile_every_hours is set but there are no AWS credentials "
            "(IRSA role, AWS_PROFILE or AWS_ACCESS_KEY_ID): spend is not compared with the bill"
        )
        return None
    bill = AwsBill(session=session)

    def rows(since: float, until: float) -> list[Any]:
        with Ledger(database, window_seconds=None) as reader:  # its own connection: a thread
            return list(reader.windows(since, until))

    return SpendDrift(
        rows, lambda first, end: bill.cost_by_tag(POOL_TAG, first, end).usd, hours * 3600
    )


def _in_cluster(
    config: SpilloverConfig, cluster: ClusterOperations, ledger: Ledger
) -> tuple[LeaderElector, ClusterReporter]:
    """The Lease's elector and the status resource's reporter, sharing one identity."""
    election = cluster.leader_election
    lock = LeaseLock(ApiObjects(cluster), cluster.namespace, election.lease_name)
    elector = LeaderElector(lock, election)
    logger.info("leader election: %s as %s", lock.describe, elector.identity)

    def spend(now: float) -> tuple[float, float]:
        day_start = now - now % 86400  # UTC midnight
        today = sum(row.usd for row in ledger.spend(day_start, now, by="pool"))
        month = sum(row.usd for row in ledger.spend(month_start(now), now, by="pool"))
        return today, month

    return elector, ClusterReporter(config, cluster, elector.identity, spend)


def _spend_by_category(database: Path) -> dict[tuple[str, str], float]:
    """All-time spend per (pool, category), read with its own connection (scrapes come
    from the metrics server's thread)."""
    with Ledger(database, window_seconds=None) as reader:
        totals: dict[tuple[str, str], float] = {}
        for line in reader.bill(0.0, time.time() + 1).lines:
            key = (line.pool, line.category)
            totals[key] = totals.get(key, 0.0) + line.usd
        return totals


def _open_ledger(args: argparse.Namespace) -> Ledger:
    database = database_path(load_config(args.config), args.run_dir, args.db)
    if not database.path.exists():
        raise SpilloverError(
            f"no controller ledger at {database.path} ({database.origin}; config "
            f"{args.config}); start the controller (`spillover local up`, or "
            "`spillover controller run`) or pass --db"
        )
    return Ledger(database.path, window_seconds=None)


def _status(args: argparse.Namespace) -> int:
    with _open_ledger(args) as ledger:
        print(render_status(ledger, args.decisions, args.format))
    return 0


def render_status(ledger: Ledger, decisions: int = 8, fmt: str = "table") -> str:
    """Pools, weights, mode and the last decisions with their reasons."""
    saved = ledger.load_controller_state()
    recent = ledger.recent_decisions(decisions)
    if saved is None:
        raise SpilloverError("the controller has not completed a tick yet")
    status = json.loads(saved.status)
    if fmt == "json":
        status["decisions"] = [
            {"at": d.at, "decision": d.decision, "reason": d.reason} for d in recent
        ]
        return json.dumps(status, indent=2)
    lines = [_status_header(status)]
    if "private_loss" in status:  # states saved before the reserve existed lack it
        lines.append(f"failover: {status['private_loss']['summary']}")
    lines.append("")
    lines.append(format_table(STATUS_HEADERS, [_status_row(pool) for pool in status["pools"]]))
    lines.extend(_price_lines(status["pools"]))
    lines.append("\nlast decisions:")
    for decision in recent:
        stamp = time.strftime("%H:%M:%S", time.localtime(decision.at))
        lines.append(f"  {stamp}  {decision.decision}: {decision.reason}")
    return "\n".join(lines)


STATUS_HEADERS = [
    "pool", "role", "status", "ready/desired", "weight", "rps", "queue ms", "$/hour",
]  # fmt: skip


def _status_header(status: dict[str, Any]) -> str:
    age = time.time() - status["at"]
    stale = " (controller not ticking?)" if age > 3 * status["tick_seconds"] + 5 else ""
    demand = status["demand_rps"]
    planned = status["planned_rps"]
    line = f"mode {status['mode']}"
    line += f", demand {demand:.0f} rps" if demand is not None else ", demand unknown (stale)"
    if planned is not None:
        line += f", planned {planned:.0f} rps"
    if status["budget_limited"]:
        line += ", BUDGET LIMITED"
    if status.get("paused"):
        line += ", PAUSED (spillover.io/paused: nothing applied)"
    return f"{line}; as of {age:.0f} s ago{stale}"


def _status_row(pool: dict[str, Any]) -> list[object]:
    def number(value: float | None, digits: int) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    weight = pool["weight"]
    return [
        pool["pool"],
        f"{pool['role']} ({pool['capacity_type']})",
        pool["status"],
        f"{pool['ready']}/{pool['desired'] if pool['desired'] is not None else '-'}",
        "-" if weight is None else f"{weight}%",
        number(pool["served_rps"], 0),
        number(pool["queue_time_ms"], 1),
        f"{pool['usd_per_hour']:.2f}",
    ]


def _price_lines(pools: list[dict[str, Any]]) -> list[str]:
    """Pools not charged at a fresh price: stale market prices and price-book fallbacks."""
    lines = []
    for pool in pools:
        note = pool.get("price_note")  # absent in status stored before market prices
        if note:
            origin = "STALE price" if pool["price_origin"] == "stale" else "price book"
            lines.append(f"  {pool['pool']}: {origin} ${pool['usd_per_replica_hour']:.4f}: {note}")
    return ["", "prices not fresh from AWS:", *lines] if lines else []


def _spend(args: argparse.Namespace) -> int:
    now = time.time()
    since = parse_since(args.since, now)
    with _open_ledger(args) as ledger:
        if args.by == "category":
            print(format_bill(ledger.bill(since, now), args.format), end="")
            return 0
        rows = ledger.spend(since, now, by=args.by)
    print(format_spend(rows, args.format, args.by), end="")
    return 0


def _reconcile(args: argparse.Namespace) -> int:
    month = Month.parse(args.month)
    with _open_ledger(args) as ledger:
        rows = ledger.windows(month.start_s, month.end_s)
    session = aws_session()
    if not has_credentials(session):
        raise SpilloverError(
            "no AWS credentials to read the bill with: set AWS_PROFILE or AWS_ACCESS_KEY_ID "
            "(ce:GetCostAndUsage), or run it where the controller's role applies"
        )
    try:
        bill = AwsBill(session=session).cost_by_tag(POOL_TAG, month.first_day, month.next_first_day)
    except AwsPriceError as error:
        raise SpilloverError(f"cannot read the bill: {error}") from None
    lines = reconcile(rows, bill.usd)
    print(format_reconciled(lines, month, bill.estimated, args.format))
    if args.max_drift is None:
        return 0
    drifting = over(lines, args.max_drift)
    for line in drifting:
        print(
            f"{line.tag or '(untagged)'} drifts {line.drift_percent:+.1f}% "
            f"(above --max-drift {args.max_drift:g}%): {line.explanation}",
            file=sys.stderr,
        )
    return 1 if drifting else 0
