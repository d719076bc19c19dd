"""An area whose import fails on a module no extra provides: a bug, not a missing extra."""

from __future__ import annotations

import argparse

import spillover_no_such_module  # noqa: F401


def register(commands: argparse._SubParsersAction) -> None:
    commands.add_parser("broken")
