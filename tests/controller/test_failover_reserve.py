"""The failover reserve, tick by tick: warm spot replicas sized to private's demand."""

from __future__ import annotations

import pytest

from spillover.controller.decisions import Mode, ScalePool
from tests.controller.simulated import Scenario, scenario_config


def reserve(share: float, **overrides: dict) -> Scenario:
    return Scenario(scenario_config(failover={"reserve_share": share}, **overrides))


@pytest.mark.parametrize(
    ("share", "demand", "warm"),
    [
        pytest.param(1.0, 120, 2, id="all-of-120-rps-needs-2-x-70"),
        pytest.param(0.5, 120, 1, id="half-of-120-rps-needs-1"),
        pytest.param(1.0, 30, 1, id="low-demand-1-replica"),
        pytest.param(1.0, 0, 0, id="no-demand-nothing-warm"),
        pytest.param(0.0, 120, 0, id="no-reserve"),
    ],
)
def test_the_reserve_keeps_spot_replicas_warm_for_a_share_of_private_demand(share, demand, warm):
    scenario = reserve(share)
    scenario.run(demand=demand, seconds=60)
    assert scenario.desired("spot") == scenario.ready("spot") == warm
    assert scenario.desired("ondemand") == 0  # the reserve sits on the cheapest burst pool
    assert scenario.state.mode is Mode.NORMAL  # standing by is not bursting
    if warm:
        assert scenario.weights["spot"] == 1  # a trickle, so the gateway fails over at once
        reason = scenario.history[-1][1]
        scale = next(d for d in reason if isinstance(d, ScalePool) and d.pool == "spot")
        assert "failover reserve" in scale.reason


def test_a_private_loss_finds_the_reserve_ready_and_adds_nothing_on_top():
    scenario = reserve(1.0)
    scenario.run(demand=120, seconds=60)
    scenario.pools["private"].broken = True
    scenario.tick(demand=120)
    assert scenario.state.mode is Mode.FAILOVER
    # No cold start: the warm replicas take all of it on the tick the loss is seen.
    assert scenario.weights == {"private": 0, "spot": 100, "ondemand": 0}
    assert scenario.ready("spot") * 100 >= 120
    # Private carries nothing now, so no reserve on top of what failover needs.
    assert scenario.desired("spot") == 2


def test_without_a_reserve_the_same_loss_waits_a_cold_start():
    scenario = reserve(0.0)
    scenario.run(demand=120, seconds=60)
    scenario.pools["private"].broken = True
    scenario.tick(demand=120)
    assert scenario.ready("spot") == 0
    assert scenario.desired("spot") == 2


def test_the_reserve_comes_on_top_of_the_overflow():
    scenario = reserve(1.0)
    scenario.run(demand=200, seconds=60)  # 140 on private, 60 overflow
    assert scenario.desired("spot") == 1 + 2  # overflow 60/70, reserve 140/70
    assert scenario.state.mode is Mode.BURST


def test_the_reserve_follows_demand_down_after_the_cooldown():
    scenario = reserve(1.0)
    scenario.run(demand=120, seconds=60)
    assert scenario.desired("spot") == 2
    scenario.run(demand=30, seconds=10)
    assert scenario.desired("spot") == 2  # the cooldown holds it
    scenario.run(demand=30, seconds=40)
    assert scenario.desired("spot") == 1


def test_the_reserve_stops_at_the_pool_max_and_min_replicas_still_counts():
    capped = reserve(1.0, pools={"spot": {"max_replicas": 1}})
    capped.run(demand=120, seconds=60)
    assert capped.desired("spot") == 1
    floor = reserve(0.5, pools={"spot": {"min_replicas": 2}})
    floor.run(demand=120, seconds=60)
    assert floor.desired("spot") == 2  # the floor covers the reserve's 1
    assert floor.state.mode is Mode.NORMAL


def test_overflow_on_a_pool_the_reserve_fills_to_its_max_is_still_a_burst():
    """The demo's spike: private full, spot at its max of 2 for the overflow alone. The
    reserve cannot be on top any more, so those replicas are overflow, not standing by."""
    scenario = reserve(1.0, pools={"spot": {"max_replicas": 2}})
    scenario.run(demand=270, seconds=60)  # 140 on private, 130 overflow: 2 x 70 on spot
    assert scenario.desired("spot") == 2
    assert scenario.desired("ondemand") == 0
    assert scenario.state.mode is Mode.BURST
