"""`spillover drill NAME`: run a drill and its control run, each on a local stack of
its own, write one report on both, and exit with its verdict: 0 passed (and the control
failed), 1 failed, 3 passed on a run cut short, 4 inconclusive (the control passed)."""

from __future__ import annotations

import argparse
from pathlib import Path

from loadtest.drills import DRILLS
from loadtest.drills.drill import interrupted
from loadtest.drills.harness import Where
from loadtest.drills.settings import DEFAULT_DRILLS, load_drill_settings
from loadtest.report import (
    CONTROL_EXIT_HELP,
    EXIT_CODES,
    EXIT_CODES_HELP,
    Check,
    Report,
    Verdict,
    worst,
)
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
        "then its control run: the same drill with the mechanism it tests turned off "
        "(its `control:` section in the drill config), which must fail. Writes "
        "reports/<drill>-<time>/report.{json,md}, timeline.png and control-timeline.png, "
        "and exits 0 only when the drill passes and its control fails. Ctrl-C ends the "
        "drill's load and still reports.",
        epilog=EXIT_CODES_HELP + CONTROL_EXIT_HELP + "; with all, the worst of the drills'.",
    )
    drill.add_argument("name", choices=[*DRILLS, "all"], help="the drill, or all four in turn")
    drill.add_argument(
        "--config", type=Path, default=DEFAULT_DRILLS, help="drill config (default: packaged)"
    )
    drill.add_argument("--reports-dir", type=Path, default=Path("reports"))
    drill.add_argument("--run-dir", type=Path, default=DEFAULT_DRILL_RUN_DIR)
    drill.add_argument("--port-base", type=int, default=DEFAULT_PORT_BASE)
    drill.add_argument("--model-repo", type=Path, default=DEFAULT_REPO)
    drill.add_argument(
        "--no-control",
        dest="control",
        action="store_false",
        help="skip the control run (quicker; the report says a PASS was not shown to be "
        "able to fail)",
    )
    drill.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_drill_settings(args.config)
    where = Where(args.run_dir, args.port_base, args.model_repo)
    names = list(DRILLS) if args.name == "all" else [args.name]
    verdicts: list[Verdict] = []
    for index, name in enumerate(names):
        print(f"drill {name}: starting a local stack in {args.run_dir} ...", flush=True)
        report = DRILLS[name].run(settings, where, control=args.control)
        directory = write_report(report, args.reports_dir)
        print(summary(report))
        print(f"report: {directory / 'report.md'}\n", flush=True)
        verdicts.append(report.verdict)
        if interrupted(report):
            skipped = names[index + 1 :]
            if skipped:
                print(f"Ctrl-C: not running {', '.join(skipped)}", flush=True)
            break
    return EXIT_CODES[worst(verdicts)]


def summary(report: Report) -> str:
    """The verdict and each check, with the control's result beside the treatment's."""
    control = {} if report.control is None else {c.name: c for c in report.control.checks}
    headers = ["check", "goal", "treatment", ""]
    if report.control is not None:
        headers += ["control", "", "must fail"]
    rows = []
    for check in report.checks:
        row = [check.name, f"{check.op} {check.threshold:g}", *_measured(check)]
        if report.control is not None:
            row += [*_measured(control.get(check.name))]
            row.append("yes" if check.name in report.control_must_fail else "")
        rows.append(row)
    text = f"{report.title}: {report.verdict_text}\n{format_table(headers, rows)}"
    if report.coverage is not None and report.partial:
        text += f"\npartial run: {report.coverage.describe()}"
    if report.control_skipped is not None:
        text += f"\nno control run: {report.control_skipped}"
    for miss in report.control_misses:
        text += f"\ncontrol did not fail: {miss}"
    return text


def _measured(check: Check | None) -> list[str]:
    if check is None:
        return ["-", ""]
    value = "-" if check.value is None else f"{check.value:g} {check.unit}"
    return [value, "pass" if check.passed else "FAIL"]
