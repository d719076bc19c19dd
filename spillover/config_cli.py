"""`spillover config`: check a spillover.yaml, print its JSON Schema."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from spillover.config import SpilloverConfig, json_schema, load_config
from spillover.private_loss import private_loss

LOCAL_DEFAULT = Path(__file__).parent / "local" / "spillover.yaml"
# Here rather than in local/cli.py: the controller uses it too, in an install without the
# local stack's packages.
DEFAULT_RUN_DIR = Path(os.environ.get("SPILLOVER_RUN_DIR", ".spillover/local"))


def register(commands: argparse._SubParsersAction) -> None:
    config = commands.add_parser("config", help="check a spillover.yaml or print its schema")
    actions = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="validate a spillover.yaml and show its prices")
    check.add_argument("path", type=Path, nargs="?", default=LOCAL_DEFAULT)
    check.add_argument(
        "--demand",
        type=_demand,
        metavar="RPS",
        help="private's demand for the private-loss figure (default: what private is "
        "planned to carry at most, max_replicas x capacity_rps x target_utilization)",
    )
    check.set_defaults(func=_check)
    schema = actions.add_parser("schema", help="print the JSON Schema of spillover.yaml")
    schema.set_defaults(func=_schema)


def _check(args: argparse.Namespace) -> int:
    config = load_config(args.path)
    print(f"{args.path}: valid")
    for pool in config.pools:
        print(
            f"  {pool.name}: {pool.role}, {pool.min_replicas}-{pool.max_replicas} replicas, "
            f"${pool.price.hourly_usd:.3f}/replica-hour ({pool.price.source})"
        )
        market = pool.price.market
        if market is not None:
            asked = "EC2 spot price history" if pool.capacity_type == "spot" else "Pricing API"
            print(
                f"    priced from the {asked}: {', '.join(market.instance_types)} in "
                f"{', '.join(market.zones) or market.region}, every {market.refresh_seconds:g} s; "
                "the price above is its price book"
            )
    print(f"  failover: {_private_loss_line(config, args.demand)}")
    return 0


def _private_loss_line(config: SpilloverConfig, demand: float | None) -> str:
    """What a private loss costs with this file's settings, from its own numbers."""
    if demand is None:
        private = [pool for pool in config.pools if pool.role == "private"]
        if any(pool.capacity_rps is None for pool in private):
            return "private's capacity is measured at run time: pass --demand RPS for the cost"
        demand = sum(
            pool.max_replicas * (pool.capacity_rps or 0.0) * config.policy.target_utilization
            for pool in private
        )
    capacities = {pool.name: pool.capacity_rps for pool in config.pools}
    loss = private_loss(config, demand, capacities)
    line = loss.sentence()
    ceiling = config.budget.max_burst_usd_per_hour
    if ceiling is not None and loss.usd_per_hour > ceiling:
        line += (
            f"; but budget.max_burst_usd_per_hour (${ceiling:g}) is below that price, and the "
            "controller keeps within it: fewer replicas stay warm"
        )
    if config.failover.reserve_share > 0:
        bare = config.model_copy(update={"failover": config.failover.model_copy(
            update={"reserve_share": 0.0})})  # fmt: skip
        without = private_loss(bare, demand, capacities).failed_requests
        line += f"; with failover.reserve_share 0 it would fail ~{without:.0f}"
    return line


def _demand(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"--demand must be requests/s, 0 or more, got {text!r}")
    return value


def _schema(args: argparse.Namespace) -> int:
    print(json_schema(), end="")
    return 0
