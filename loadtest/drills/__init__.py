"""Drills: scripted experiments on the local stack, each with a verdict and a report."""

from __future__ import annotations

from collections.abc import Callable

from loadtest.drills import burst, failover, metrics_outage, spot_interruption
from loadtest.drills.harness import Where
from loadtest.drills.settings import DrillSettings
from loadtest.report import Report

DRILLS: dict[str, Callable[[DrillSettings, Where], Report]] = {
    "failover": failover.run,
    "burst": burst.run,
    "spot-interruption": spot_interruption.run,
    "metrics-outage": metrics_outage.run,
}
