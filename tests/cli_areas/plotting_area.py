"""An area of the command line that needs matplotlib (the `plot` extra) to import."""

from __future__ import annotations

import argparse

import matplotlib  # noqa: F401


def register(commands: argparse._SubParsersAction) -> None:
    commands.add_parser("draw", help="draws")
