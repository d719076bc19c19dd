"""`spillover`: the command line. Each area registers its own subcommands."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from spillover import __version__
from spillover.errors import SpilloverError


def build_parser() -> argparse.ArgumentParser:
    from loadtest import cli as loadtest_cli
    from spillover import config_cli, demo
    from spillover.bench import cli as bench_cli
    from spillover.controller import cli as controller_cli
    from spillover.drivers import eks_token_cli
    from spillover.local import cli as local_cli
    from spillover.model import cli as model_cli

    parser = argparse.ArgumentParser(
        prog="spillover",
        description="Serve on the private GPU pool first; spill over to a cloud burst pool.",
    )
    parser.add_argument("--version", action="version", version=f"spillover {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    model_cli.register(commands)
    config_cli.register(commands)
    local_cli.register(commands)
    controller_cli.register(commands, local_cli.DEFAULT_RUN_DIR)
    demo.register(commands)
    eks_token_cli.register(commands)
    bench_cli.register(commands)
    loadtest_cli.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except SpilloverError as error:
        print(f"spillover: error: {error}", file=sys.stderr)
        return 1
