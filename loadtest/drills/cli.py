"""`spillover drill NAME`: run a drill on a local stack of its own, write its report,
and exit 0 only when every check of its verdict passed."""

from __future__ import annotations

import argparse
from pathlib import Path

from loadtest.drills import DRILLS
from loadtest.drills.harness import Where
from loadtest.drills.settings import DEFAULT_DRILLS, load_drill_settings
from loadtest.report import Report
from loadtest.report_files import write_report
from spillover.local.cli import DEFAULT_RUN_DIR
from spillover.model.build import DEFAULT_REPO
from spillover.tables import format_table

DEFAULT_DRILL_RUN_DIR = DEFAULT_RUN_DIR.parent / "drill"
DEFAULT_PORT_BASE = 8300
"""Apart from `local up`'s 8000 and `demo`'s, so a drill never meets a running stack."""


def register(commands: argparse._SubParsersAction) -> None:
    drill = commands.add_parser(
        "drill",
        help="run a failover, flash-sale, spot-interruption or metrics-outage drill",
        description="Runs the drill on a local stack of its own (always stopped after), "
        "writes reports/<drill>-<time>/report.{json,md} and timeline.png, and exits 0 "
        "only when its verdict passes.",
    )
    drill.add_argument("name", choices=[*DRILLS, "all"], help="the drill, or all four in turn")
    drill.add_argument(
        "--config", type=Path, default=DEFAULT_DRILLS, help="drill config (default: packaged)"
    )
    drill.add_argument("--reports-dir", type=Path, default=Path("reports"))
    drill.add_argument("--run-dir", type=Path, default=DEFAULT_DRILL_RUN_DIR)
    drill.add_argument("--port-base", type=int, default=DEFAULT_PORT_BASE)
    drill.add_argument("--model-repo", type=Path, default=DEFAULT_REPO)
    drill.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_drill_settings(args.config)
    where = Where(args.run_dir, args.port_base, args.model_repo)
    names = list(DRILLS) if args.name == "all" else [args.name]
    verdicts = []
    for name in names:
        print(f"drill {name}: starting a local stack in {args.run_dir} ...", flush=True)
        report = DRILLS[name].run(settings, where)
        directory = write_report(report, args.reports_dir)
        print(summary(report))
        print(f"report: {directory / 'report.md'}\n", flush=True)
        verdicts.append(report.verdict)
    return 0 if all(verdict == "pass" for verdict in verdicts) else 1


def summary(report: Report) -> str:
    rows = [
        [
            check.name,
            "-" if check.value is None else f"{check.value:g} {check.unit}",
            f"{check.op} {check.threshold:g}",
            "pass" if check.passed else "FAIL",
        ]
        for check in report.checks
    ]
    table = format_table(["check", "measured", "goal", ""], rows)
    return f"{report.title}: {report.verdict.upper()}\n{table}"
