"""`spillover config`: check a spillover.yaml, print its JSON Schema."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from spillover.config import json_schema, load_config

LOCAL_DEFAULT = Path(__file__).parent / "local" / "spillover.yaml"
# Here rather than in local/cli.py: the controller uses it too, in an install without the
# local stack's packages.
DEFAULT_RUN_DIR = Path(os.environ.get("SPILLOVER_RUN_DIR", ".spillover/local"))


def register(commands: argparse._SubParsersAction) -> None:
    config = commands.add_parser("config", help="check a spillover.yaml or print its schema")
    actions = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="validate a spillover.yaml and show its prices")
    check.add_argument("path", type=Path, nargs="?", default=LOCAL_DEFAULT)
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
    return 0


def _schema(args: argparse.Namespace) -> int:
    print(json_schema(), end="")
    return 0
