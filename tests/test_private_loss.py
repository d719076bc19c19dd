"""What a private loss costs: one arithmetic for config check, status and the policy."""

from __future__ import annotations

import math

import pytest

from spillover.config import load_config
from spillover.config_cli import LOCAL_DEFAULT
from spillover.private_loss import private_loss
from tests.controller.simulated import scenario_config

SPOT_ONLY = {"spot": 100.0, "ondemand": 100.0}


def test_no_reserve_fails_the_demand_for_a_tick_and_the_burst_cold_start():
    config = scenario_config()  # tick 2 s, spot cold start 20 s
    loss = private_loss(config, 50, SPOT_ONLY)
    assert loss.window_s == 22
    assert loss.failed_requests == pytest.approx(50 * 22)
    assert loss.usd_per_hour == 0
    assert "fails ~1100 requests over the 22 s" in loss.sentence()
    assert "no burst replica is kept warm ($0/h)" in loss.sentence()


def test_a_reserve_covering_the_demand_fails_nothing_and_states_its_price():
    config = scenario_config(failover={"reserve_share": 1.0})  # spot $1/h, 70 rps planned
    loss = private_loss(config, 50, SPOT_ONLY)
    assert dict(loss.warm_replicas) == {"spot": 1, "ondemand": 0}
    assert loss.failed_requests == 0
    assert (loss.usd_per_hour, loss.usd_per_month) == (1.0, 720.0)
    assert "fails no request" in loss.sentence()
    assert "1 spot) costs $1.00/h, $720/month" in loss.sentence()


def test_a_partial_reserve_fails_what_its_replicas_cannot_serve():
    config = scenario_config(failover={"reserve_share": 0.5})
    loss = private_loss(config, 300, SPOT_ONLY)  # 150 rps reserved: 3 x 70 planned
    assert loss.warm_replicas["spot"] == 3
    assert loss.warm_rps == 300  # at full capacity they take it all
    assert private_loss(config, 500, SPOT_ONLY).failed_requests == pytest.approx((500 - 400) * 22)


def test_min_replicas_of_every_burst_pool_count_as_warm():
    config = scenario_config(pools={"ondemand": {"min_replicas": 1}})
    loss = private_loss(config, 150, SPOT_ONLY)
    assert loss.warm_replicas == {"spot": 0, "ondemand": 1}
    assert loss.failed_requests == pytest.approx(50 * 22)
    assert loss.usd_per_hour == 3.0


def test_unknown_burst_capacity_is_said_not_guessed():
    config = scenario_config(failover={"reserve_share": 1.0})
    loss = private_loss(config, 50, {"spot": None, "ondemand": None})
    assert loss.failed_requests is None
    assert "unknown number of requests" in loss.sentence()


def test_without_a_burst_pool_a_loss_fails_everything():
    config = scenario_config()
    config = config.model_copy(update={"pools": [config.pool("private")]})
    loss = private_loss(config, 50, {})
    assert math.isinf(loss.failed_requests or 0)
    assert "every request until private is back" in loss.sentence()


def test_the_packaged_reserve_covers_private_at_its_planned_load():
    config = load_config(LOCAL_DEFAULT)
    private = config.pool("private")
    planned = private.max_replicas * (private.capacity_rps or 0) * config.policy.target_utilization
    capacities = {pool.name: pool.capacity_rps for pool in config.pools}
    assert private_loss(config, planned, capacities).failed_requests == 0
