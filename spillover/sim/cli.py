"""`spillover sim`: the controller against a simulated fleet, beside its baselines."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from importlib import resources
from pathlib import Path

from spillover.config import load_config
from spillover.errors import SpilloverError
from spillover.sim import baselines, report
from spillover.sim.run import Progress
from spillover.sim.settings import load_settings
from spillover.sim.traces import DEFAULT_PEAK_RPS, Trace, read_csv, shop_week

REPORTS_DIR = Path(".spillover/reports")


def packaged_fleet() -> Path:
    return Path(str(resources.files("spillover.sim") / "fleet.yaml"))


def register(commands: argparse._SubParsersAction) -> None:
    sim = commands.add_parser(
        "sim",
        help="simulate a fleet: the real controller on a simulated clock, against baselines",
    )
    sim.add_argument("--config", type=Path, help="spillover.yaml (default: the packaged fleet)")
    sim.add_argument("--settings", type=Path, help="sim.yaml: cold starts, spot, faults")
    sim.add_argument(
        "--peak-rps", type=float, default=DEFAULT_PEAK_RPS, help="an ordinary evening's peak"
    )
    sim.add_argument("--days", type=float, default=7.0, help="how much of the packaged week")
    sim.add_argument(
        "--from-day", type=float, default=0.0, help="where in the week to start (11.11 is day 3)"
    )
    sim.add_argument("--replay", type=Path, help="replay a `second,rps` CSV instead")
    sim.add_argument(
        "--runs",
        default=",".join(baselines.BASELINES),
        help="which runs, comma-separated (default all)",
    )
    sim.add_argument(
        "--jobs", type=int, default=1, help="runs at once, each in its own process (default 1)"
    )
    sim.add_argument("--reports-dir", type=Path, default=REPORTS_DIR)
    sim.add_argument("--no-plots", action="store_true", help="skip the PNGs")
    sim.set_defaults(func=_sim)

    plan = commands.add_parser(
        "plan",
        help="sweep owned GPUs (and the burst warm floor) over a trace: the cheapest fleet "
        "that meets the SLO, and the break-even utilization",
    )
    plan.add_argument("--config", type=Path, help="spillover.yaml (default: the packaged fleet)")
    plan.add_argument("--settings", type=Path, help="sim.yaml: cold starts, spot, faults")
    plan.add_argument("--peak-rps", type=float, default=DEFAULT_PEAK_RPS)
    plan.add_argument("--days", type=float, default=1.0, help="how much of the packaged week")
    plan.add_argument("--from-day", type=float, default=0.0, help="where in the week to start")
    plan.add_argument("--replay", type=Path, help="replay a `second,rps` CSV instead")
    plan.add_argument(
        "--owned", type=_counts, default=[40, 80, 120, 160], help="owned GPU counts to try"
    )
    plan.add_argument("--warm-floor", type=_counts, default=[0, 4], help="burst warm floors to try")
    plan.add_argument("--reports-dir", type=Path, default=REPORTS_DIR)
    plan.add_argument("--no-plots", action="store_true", help="skip the PNG")
    plan.set_defaults(func=_plan)


def trace_from(args: argparse.Namespace) -> Trace:
    if args.replay is not None:
        return read_csv(args.replay)
    if args.peak_rps <= 0 or args.days <= 0:
        raise SpilloverError("--peak-rps and --days must be above 0")
    if args.from_day < 0 or args.from_day + args.days > 7:
        raise SpilloverError("--from-day and --days must stay within the packaged week (7 days)")
    return shop_week(args.peak_rps, args.days, from_day=args.from_day)


def _sim(args: argparse.Namespace) -> int:
    config = load_config(args.config or packaged_fleet())
    settings = load_settings(args.settings)
    names = tuple(name.strip() for name in args.runs.split(",") if name.strip())
    unknown = [name for name in names if name not in baselines.BASELINES]
    if unknown:
        raise SpilloverError(
            f"--runs: unknown run {unknown[0]!r}; one of: {', '.join(baselines.BASELINES)}"
        )
    trace = trace_from(args)
    directory = report.new_directory(args.reports_dir)
    command = " ".join(["spillover sim", *(shlex.quote(a) for a in sys.argv[2:])]).strip()
    bar = ProgressBar(len(names), trace.seconds)
    # Each tick's decisions go to every run's ledger (its decision log); on the terminal
    # they would drown the progress bar.
    quiet = logging.getLogger("spillover.controller")
    level = quiet.level
    if not args.verbose:
        quiet.setLevel(logging.CRITICAL)
    try:
        results = baselines.run_all(
            config, settings, trace, directory, names, Progress(bar.update), max(args.jobs, 1)
        )
    finally:
        quiet.setLevel(level)
        bar.close()
    bound = baselines.lower_bound(config, settings, trace)
    table = report.rows(results, bound)
    markdown = report.render_markdown(trace, table, bound, command)
    report.write(directory, report.to_json(trace, results, table, bound, command), markdown)
    if not args.no_plots:
        try:
            from spillover.sim import plot

            plot.render(results, config.slo.p99_latency_ms, directory)
        except ModuleNotFoundError:
            print("(no PNGs: install the `plot` extra for them)", file=sys.stderr)
    print(markdown)
    print(f"report: {directory}")
    return 0


def _counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected whole numbers like 40,80,120, got {text!r}"
        ) from None
    if not counts or min(counts) < 0:
        raise argparse.ArgumentTypeError(f"expected whole numbers >= 0, got {text!r}")
    return counts


def _plan(args: argparse.Namespace) -> int:
    from spillover.sim import plan

    config = load_config(args.config or packaged_fleet())
    settings = load_settings(args.settings)
    if min(args.owned) < 1:
        raise SpilloverError("--owned: a private pool owns at least 1 GPU")
    trace = trace_from(args)
    directory = report.new_directory(args.reports_dir, "plan")
    command = " ".join(["spillover plan", *(shlex.quote(a) for a in sys.argv[2:])]).strip()
    runs = len(args.owned) * len(args.warm_floor)
    bar = ProgressBar(runs, trace.seconds)
    quiet = logging.getLogger("spillover.controller")
    level = quiet.level
    if not args.verbose:
        quiet.setLevel(logging.CRITICAL)
    try:
        result = plan.sweep(
            config, settings, trace, args.owned, args.warm_floor, directory, Progress(bar.update)
        )
    finally:
        quiet.setLevel(level)
        bar.close()
    markdown = plan.render_markdown(result, trace, command)
    (directory / "report.md").write_text(markdown)
    document = {
        "command": command,
        "break_even_utilization": result.break_even,
        "points": [point.__dict__ | {"meets_slo": point.meets_slo} for point in result.points],
    }
    report.write(directory, document, markdown)
    if not args.no_plots:
        try:
            from spillover.sim import plot

            plot.render_plan(result.points, directory / "plan.png")
        except ModuleNotFoundError:
            print("(no PNG: install the `plot` extra for it)", file=sys.stderr)
    print(markdown)
    print(f"report: {directory}")
    return 0


class ProgressBar:
    """One line on stderr, redrawn once per simulated hour: run, bar, speed."""

    def __init__(self, runs: int, seconds: int, width: int = 30) -> None:
        self.runs, self.seconds, self.width = runs, seconds, width
        self.began = time.perf_counter()
        self.current = ""
        self.run_index = 0
        self.run_began = self.began

    def update(self, name: str, done: int, total: int) -> None:
        if name != self.current:
            self.current, self.run_index, self.run_began = (
                name,
                self.run_index + 1,
                time.perf_counter(),
            )
        filled = int(self.width * done / total)
        elapsed = time.perf_counter() - self.run_began
        # A run finished in another process (--jobs) reports once, at its end: no speed.
        speed = f", {done / elapsed:,.0f} simulated s per wall s" if elapsed > 0.5 else ", done"
        line = (
            f"\r[{'#' * filled}{'.' * (self.width - filled)}] run {self.run_index}/{self.runs} "
            f"{name}: day {done / 86400:.1f} of {total / 86400:.1f}{speed}"
        )
        print(line, end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        print(file=sys.stderr)
