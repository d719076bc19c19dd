"""Traffic shares: what the gateway is told per pool."""

from __future__ import annotations

from spillover.controller.policy import routing
from tests.controller.simulated import scenario_config


def pools():
    return scenario_config().pools  # private, spot, ondemand in preference order


def test_a_warm_pool_keeps_a_trickle_so_the_gateway_can_fail_over_to_it():
    shares = routing.shares(
        pools(), {"private": 2, "spot": 1}, {"private": 100, "spot": 100}, 50.0, 0.7
    )
    assert shares == {"private": 99, "spot": 1, "ondemand": 0}


def test_with_no_demand_the_warm_pool_still_keeps_its_trickle():
    shares = routing.shares(pools(), {"private": 1, "spot": 1}, {}, 0.0, 0.7)
    assert shares == {"private": 99, "spot": 1, "ondemand": 0}


def test_a_pool_without_ready_replicas_gets_nothing():
    shares = routing.shares(pools(), {"private": 0, "spot": 2}, {"spot": 100}, 50.0, 0.7)
    assert shares == {"private": 0, "spot": 100, "ondemand": 0}


def test_overflow_shares_are_unchanged_by_the_trickle():
    shares = routing.shares(
        pools(), {"private": 1, "spot": 1}, {"private": 100, "spot": 100}, 140.0, 0.7
    )
    assert shares == {"private": 50, "spot": 50, "ondemand": 0}
