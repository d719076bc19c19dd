"""`spillover drill NAME`: run a drill on a local stack of its own, write its report,
and exit with its verdict: 0 passed, 1 failed, 3 passed on a run cut short."""

from __future__ import annotations

import argparse
from pathlib import Path

from loadtest.drills import DRILLS
from loadtest.drills.harness import Where
from loadtest.drills.settings import DEFAULT_DRILLS, load_drill_settings
from loadtest.report import EXIT_CODES, EXIT_CODES_HELP, Report, Verdict, worst
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
        "only when its verdict passes. Ctrl-C ends the drill's load and still reports.",
        epilog=EXIT_CODES_HELP + "; with all, the worst of the drills'.",
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
    verdicts: list[Verdict] = []
    for index, name in enumerate(names):
        print(f"drill {name}: starting a local stack in {args.run_dir} ...", flush=True)
        report = DRILLS[name].run(settings, where)
        directory = write_report(report, args.reports_dir)
        print(summary(report))
        print(f"report: {directory / 'report.md'}\n", flush=True)
        verdicts.append(report.verdict)
        if report.coverage is not None and report.coverage.bound == "stop":
            skipped = names[index + 1 :]
            if skipped:
                print(f"Ctrl-C: not running {', '.join(skipped)}", flush=True)
            break
    return EXIT_CODES[worst(verdicts)]


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
    text = f"{report.title}: {report.verdict_text}\n{table}"
    if report.coverage is not None and report.partial:
        text += f"\npartial run: {report.coverage.describe()}"
    return text
