"""An area that imports matplotlib only when its command runs, as loadtest's reports do."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    command = commands.add_parser("plot-later", help="draws when run")
    command.set_defaults(func=_draw)


def _draw(args: argparse.Namespace) -> int:
    import matplotlib  # noqa: F401

    return 0
