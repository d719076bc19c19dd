"""What a drill recorded: its load run, the gateway's and the controller's samples, the
controller's decisions and charges, and when each of its actions was done.

A drill's assessment reads only this (and its setup), so its checks can be tried on
hand-made samples without a stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from loadtest.results import LoadRun
from loadtest.timeline import ControllerSample, GatewaySample
from spillover.controller.ledger import CategoryRow, DecisionRecord, WindowRow

F = TypeVar("F")
G = TypeVar("G")


@dataclass(frozen=True)
class Observed(Generic[F]):
    run: LoadRun
    gateway: list[GatewaySample]
    controller: list[ControllerSample]
    decisions: list[DecisionRecord]
    """Every decision the controller logged since the load's t = 0, oldest first."""
    charges: list[WindowRow | CategoryRow]
    """Compute rows and every other category's: a drill's spend is all of it."""
    """The ledger's rows for the windows from t = 0 on: what the spend figures sum."""
    ledger_window_s: float
    done: dict[str, float]
    """Action label -> when it was done (epoch seconds)."""
    facts: F
    """What the drill's own actions found out (who was killed, what the gateway showed);
    None for drills whose actions learn nothing."""
    actions: tuple[str, ...] = ()
    """Every action the script planned, in order; those not in `done` never happened
    (the run was cut short before them)."""

    def offset(self, label: str) -> float:
        """When an action was done, in seconds after t = 0."""
        return self.done[label] - self.run.started_at

    @property
    def missed(self) -> list[str]:
        """The planned actions that were not done."""
        return [label for label in self.actions if label not in self.done]

    def with_facts(self, facts: G) -> Observed[G]:
        return Observed(
            self.run,
            self.gateway,
            self.controller,
            self.decisions,
            self.charges,
            self.ledger_window_s,
            self.done,
            facts,
            self.actions,
        )
