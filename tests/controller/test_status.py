"""`spillover status` states what a private loss would cost now, from measured demand."""

from __future__ import annotations

import json

from spillover.controller.cli import render_status
from spillover.controller.ledger import Ledger
from spillover.controller.snapshot import PoolObservation, Snapshot
from spillover.controller.status import status_view
from tests.controller.simulated import Scenario, scenario_config


def status_after(share: float, demand: float, served_on_private: float) -> dict:
    """Status after a minute at `demand`, private measured serving `served_on_private`."""
    scenario = Scenario(scenario_config(failover={"reserve_share": share}))
    scenario.run(demand=demand, seconds=60)
    observed = scenario.snapshot(demand)
    pools = tuple(
        PoolObservation(p.name, p.replicas, served_rps=served_on_private)
        if p.name == "private"
        else p
        for p in observed.pools
    )
    snapshot = Snapshot(observed.at, demand, pools, observed.weights)
    return status_view(scenario.config, snapshot, scenario.state, 2.0)


def test_status_states_the_loss_from_the_demand_private_serves():
    bare = status_after(0.0, demand=120, served_on_private=118)
    assert bare["private_loss"]["private_rps"] == 118
    assert bare["private_loss"]["failed_requests"] == 118 * 22  # tick 2 s + cold start 20 s
    reserved = status_after(1.0, demand=120, served_on_private=118)
    assert reserved["private_loss"]["failed_requests"] == 0
    assert reserved["private_loss"]["reserve_usd_per_hour"] == 2.0  # 2 spot at $1/h


def test_the_status_table_prints_the_loss_line(tmp_path):
    status = status_after(1.0, demand=120, served_on_private=118)
    ledger = Ledger(tmp_path / "controller.db")
    ledger.save_controller_state(status["at"], "{}", json.dumps(status))
    text = render_status(ledger)
    assert (
        "failover: at 118 rps on private, the warm burst replicas (200 rps) take it all: a "
        "private loss fails no request; a reserve of 2 warm burst replica(s) (2 spot) costs "
        "$2.00/h, $1440/month"
    ) in text.splitlines()[1]
