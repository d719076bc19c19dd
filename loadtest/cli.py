"""The `spillover` subcommands loadtest offers: `load` and `drill`."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    from loadtest import load_cli
    from loadtest.drills import cli as drill_cli

    load_cli.register(commands)
    drill_cli.register(commands)
