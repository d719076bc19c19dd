"""`spillover`: the command line. Each area registers its own subcommands."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from spillover import __version__
from spillover.config_cli import DEFAULT_RUN_DIR
from spillover.errors import SpilloverError
from spillover.extras import advice

AREAS = (
    ("spillover.model.cli", "model", ("model",)),
    ("spillover.config_cli", None, ("config",)),
    ("spillover.local.cli", "local", ("local",)),
    ("spillover.controller.cli", "controller", ("controller", "status", "spend")),
    ("spillover.demo", "local", ("demo",)),
    ("spillover.drivers.eks_token_cli", "controller", ("eks-token",)),
    ("spillover.sim.cli", "controller", ("sim", "plan")),
    ("spillover.bench.cli", "local", ("bench",)),
    ("loadtest.cli", "local", ("load", "drill")),
)
"""Each area's module (its `register(commands)`), the install extra it needs and the commands
it adds, in help order."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spillover",
        description="Serve on the private GPU pool first; spill over to a cloud burst pool.",
    )
    parser.add_argument("--version", action="version", version=f"spillover {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name, extra, names in AREAS:
        # Imported by name so that an install without an area's extra (the controller image)
        # still starts, and lists the area's commands with what they need.
        try:
            module = importlib.import_module(module_name)
            if module_name == "spillover.controller.cli":
                module.register(commands, DEFAULT_RUN_DIR)
            else:
                module.register(commands)
        except ModuleNotFoundError as error:
            refusals = {name: advice(name, extra, error) for name in names}
            if extra is None or None in refusals.values():
                raise
            for name, refusal in refusals.items():
                _register_unavailable(commands, name, extra, str(refusal))
    return parser


def _register_unavailable(
    commands: argparse._SubParsersAction, name: str, extra: str, refusal: str
) -> None:
    """A command this install cannot run: it stays listed and says what to install."""
    # No option prefix, so that any arguments given reach `refuse` instead of a usage error.
    command = commands.add_parser(
        name, help=f"(needs the `{extra}` extra)", add_help=False, prefix_chars="\0"
    )
    command.add_argument("rest", nargs=argparse.REMAINDER)

    def refuse(args: argparse.Namespace) -> int:
        raise SpilloverError(refusal)

    command.set_defaults(func=refuse)


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
    except ModuleNotFoundError as error:
        # A command that imports an optional package only when it needs it.
        refusal = advice(args.command, None, error)
        if refusal is None:
            raise
        print(f"spillover: error: {refusal}", file=sys.stderr)
        return 1
