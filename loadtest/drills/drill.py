"""A drill in two halves: a script that acts on a real stack along a timeline and
records what happened, and an assessment that judges the recording.

The assessment is a pure function of the recording and the setup, so every check a
drill makes is tried on hand-made samples in the tests; only the script needs Triton,
HAProxy and the controller.

Every drill also runs a control: the same script on the same shape with the
mechanism it tests turned off (its `control:` section). The control is assessed the
same way and must fail the drill's `must_fail` checks; a control that passes them
shows the drill could not have failed, and the drill is inconclusive.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from loadtest.drills.harness import DrillStack, Where
from loadtest.drills.observed import Observed
from loadtest.drills.outcome import Outcome, cut_short, drill_report
from loadtest.drills.settings import DrillSection, DrillSettings, stack_config
from loadtest.drills.setup import Setup
from loadtest.report import Report

D = TypeVar("D", bound=DrillSection)
F = TypeVar("F")
NO_CONTROL = "--no-control skipped it"
STOPPED = "Ctrl-C ended the treatment run before it"


def _no_precondition(setup: Setup[D]) -> None:
    """Nothing to check before the stack starts."""


def _say(text: str) -> None:
    print(text, flush=True)


@dataclass(frozen=True)
class Drill(Generic[D, F]):
    kind: str
    """The drill's name on the command line, in drills.yaml and in its report."""
    section: Callable[[DrillSettings], D]
    """Its section of the drill config."""
    script: Callable[[DrillStack, Setup[D]], Observed[F]]
    """What it does to a running stack, on a timeline, and what it records."""
    assess: Callable[[Observed[F], Setup[D]], Outcome]
    """Its checks and figures, from the recording alone."""
    precondition: Callable[[Setup[D]], None] = _no_precondition
    """Raises DrillError before any stack starts when the drill cannot run as set up."""
    must_fail: tuple[str, ...] = ()
    """The checks the control run must fail, each with a measured value: what the
    mechanism under test guards."""
    without: str = "the mechanism off"
    """What the control run lacks, for its title ("without burst")."""

    def setups(self, settings: DrillSettings, control: bool) -> tuple[Setup[D], Setup[D] | None]:
        """The treatment's setup, and the control's (None when it is not run)."""
        drill = self.section(settings)
        source = f"{self.kind}.overrides"
        treatment = Setup(stack_config(settings, drill, source), drill, settings.stack)
        if not control:
            return treatment, None
        config = stack_config(settings, drill, source, control=True)
        assert drill.control is not None  # stack_config refused a drill without one
        switched = drill.model_copy(update=drill.control.drill_changes())
        return treatment, Setup(config, switched, settings.stack)

    def run(
        self,
        settings: DrillSettings,
        where: Where,
        control: bool = True,
        say: Callable[[str], None] = _say,
    ) -> Report:
        """Run the drill on a stack of its own (always torn down), then its control on
        another, and report on both. Both setups are checked before either starts."""
        treatment, control_setup = self.setups(settings, control)
        self.precondition(treatment)
        if control_setup is not None:
            self.precondition(control_setup)
        report = self.run_one(treatment, where)
        if control_setup is None:
            report.control_skipped = NO_CONTROL
            return report
        if interrupted(report):
            report.control_skipped = STOPPED
            return report
        say(f"drill {self.kind}: treatment {report.verdict_text}; control run ({self.without}) ...")
        return self.with_control(report, self.run_one(control_setup, where))

    def run_one(self, setup: Setup[D], where: Where) -> Report:
        with DrillStack(setup.config, where) as stack:
            observed = self.script(stack, setup)
        return self.report(observed, setup)

    def with_control(self, treatment: Report, control: Report) -> Report:
        """The treatment's report carrying its control's, judged by `must_fail`."""
        control.title = f"{control.title}, {self.without} (control)"
        treatment.control = control
        treatment.control_must_fail = list(self.must_fail)
        return treatment

    def report(self, observed: Observed[F], setup: Setup[D]) -> Report:
        """The report on a recording: assessed, unless the run was cut short before
        some of its actions, whose checks then cannot be judged."""
        if observed.missed:
            return drill_report(self.kind, cut_short(self.kind, observed), observed, setup)
        return drill_report(self.kind, self.assess(observed, setup), observed, setup)


def interrupted(report: Report) -> bool:
    """Ctrl-C ended the run (or its control's): nothing more should start."""
    runs = [report] if report.control is None else [report, report.control]
    return any(run.coverage is not None and run.coverage.bound == "stop" for run in runs)
