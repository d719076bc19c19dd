"""Drills: scripted experiments on the local stack, each with a verdict and a report."""

from __future__ import annotations

from typing import Any

from loadtest.drills import burst, failover, metrics_outage, spot_interruption
from loadtest.drills.drill import Drill

DRILLS: dict[str, Drill[Any, Any]] = {
    drill.kind: drill
    for drill in (failover.DRILL, burst.DRILL, spot_interruption.DRILL, metrics_outage.DRILL)
}
