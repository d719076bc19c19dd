"""A drill in two halves: a script that acts on a real stack along a timeline and
records what happened, and an assessment that judges the recording.

The assessment is a pure function of the recording and the setup, so every check a
drill makes is tried on hand-made samples in the tests; only the script needs Triton,
HAProxy and the controller.
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


def _no_precondition(setup: Setup[D]) -> None:
    """Nothing to check before the stack starts."""


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

    def run(self, settings: DrillSettings, where: Where) -> Report:
        """Run the drill on a stack of its own (always torn down) and report on it."""
        drill = self.section(settings)
        config = stack_config(settings, drill, f"{self.kind}.overrides")
        setup = Setup(config, drill, settings.stack)
        self.precondition(setup)
        with DrillStack(config, where) as stack:
            observed = self.script(stack, setup)
        return self.report(observed, setup)

    def report(self, observed: Observed[F], setup: Setup[D]) -> Report:
        """The report on a recording: assessed, unless the run was cut short before
        some of its actions, whose checks then cannot be judged."""
        if observed.missed:
            return drill_report(self.kind, cut_short(self.kind, observed), observed, setup)
        return drill_report(self.kind, self.assess(observed, setup), observed, setup)
