"""The policy, tick by tick on a fake clock, against simulated pools."""

from __future__ import annotations

import random

import pytest

from spillover.controller.decisions import Alert, Mode, ScalePool, SetMode, SetWeights
from spillover.controller.policy import PolicyState, sizing
from tests.controller.simulated import Scenario, scenario_config


def test_steady_load_within_private_capacity_stays_private():
    scenario = Scenario(scenario_config())
    scenario.run(demand=120, seconds=120)
    assert scenario.state.mode is Mode.NORMAL
    assert scenario.desired("spot") == scenario.desired("ondemand") == 0
    assert scenario.weights == {"private": 100, "spot": 0, "ondemand": 0}
    assert scenario.state.pools["spot"].status == "standby"


def test_spike_spills_the_overflow_to_spot_first():
    scenario = Scenario(scenario_config())
    scenario.run(demand=100, seconds=20)
    decisions = scenario.tick(demand=400)
    scale = {d.pool: d for d in decisions if isinstance(d, ScalePool)}
    assert scale["private"].replicas == 2
    assert scale["spot"].replicas == 4  # spot ($1/h) fills before on-demand ($3/h)
    assert scale["spot"].reason.startswith("overflow ")
    assert scenario.state.mode is Mode.BURST
    # Until spot replicas are ready, all traffic stays on the ready private pool.
    assert scenario.weights == {"private": 100, "spot": 0, "ondemand": 0}
    scenario.run(demand=400, seconds=30)
    assert scenario.ready("spot") == 4
    assert 30 <= scenario.weights["private"] <= 40  # 140 of 400 rps


def test_a_step_overshoots_briefly_then_settles_on_what_the_load_needs():
    """The forecast reads a step as a steep slope and plans headroom; once demand is
    flat the trend fades and the cooldown returns on-demand to 0."""
    scenario = Scenario(scenario_config(policy={"scale_down_cooldown_seconds": 30}))
    scenario.run(demand=100, seconds=20)
    scenario.tick(demand=400)
    assert scenario.desired("ondemand") > 0  # headroom for a sale that keeps rising
    scenario.run(demand=400, seconds=90)
    # 400 rps = private 2 x 70 + spot 4 x 70 (420): on-demand is not needed.
    assert (scenario.desired("spot"), scenario.desired("ondemand")) == (4, 0)


def test_demand_beyond_every_pool_fills_on_demand_and_alerts():
    scenario = Scenario(scenario_config())
    decisions = scenario.tick(demand=900)
    scale = {d.pool: d.replicas for d in decisions if isinstance(d, ScalePool)}
    assert scale == {"private": 2, "spot": 4, "ondemand": 4}
    assert any(isinstance(d, Alert) and d.topic == "capacity" for d in decisions)


def test_a_rising_ramp_gets_capacity_before_it_is_needed():
    """Forecast one cold start ahead: ready capacity stays above demand all the way up."""
    scenario = Scenario(scenario_config())
    scenario.run(demand=100, seconds=20)
    demand = 100.0
    while demand < 560:
        demand += 8  # +4 rps/s: 80 rps more within one 20 s cold start
        scenario.tick(demand)
        assert scenario.ready_capacity() >= demand, f"short of capacity at {demand:.0f} rps"


def test_reacting_without_forecast_would_fall_short_on_the_same_ramp():
    """The ramp above is a real test of the forecast: with a horizon of one tick the
    pools are short of capacity somewhere on the way up."""
    scenario = Scenario(scenario_config(policy={"forecast_horizon_seconds": 0.001}))
    scenario.run(demand=100, seconds=20)
    demand, short = 100.0, False
    while demand < 560:
        demand += 8
        scenario.tick(demand)
        short = short or scenario.ready_capacity() < demand
    assert short


def test_private_failure_fails_over_to_burst_and_fails_back():
    scenario = Scenario(scenario_config(policy={"scale_down_cooldown_seconds": 30}))
    scenario.run(demand=120, seconds=20)
    scenario.pools["private"].broken = True
    decisions = scenario.tick(demand=120)
    modes = [d for d in decisions if isinstance(d, SetMode)]
    assert modes and modes[0].mode is Mode.FAILOVER
    assert "private has no ready replica" in modes[0].reason
    assert scenario.desired("spot") == 2  # all 120 rps at 70 rps per replica
    assert scenario.desired("private") == 2  # the pool is still wanted back
    assert scenario.state.pools["private"].status == "down"
    scenario.run(demand=120, seconds=30)
    assert scenario.weights == {"private": 0, "spot": 100, "ondemand": 0}
    scenario.pools["private"].broken = False  # repaired: replicas restart
    scenario.run(demand=120, seconds=12)
    assert scenario.state.mode is Mode.BURST  # back, burst still held by the cooldown
    assert scenario.weights["private"] == 99  # spot, still warm, keeps a 1% trickle
    scenario.run(demand=120, seconds=40)
    assert scenario.state.mode is Mode.NORMAL
    assert scenario.desired("spot") == 0


def test_metrics_outage_holds_everything_and_returns():
    scenario = Scenario(scenario_config())
    scenario.run(demand=400, seconds=40)
    before = {pool: scenario.desired(pool) for pool in ("private", "spot", "ondemand")}
    weights = dict(scenario.weights)
    decisions = scenario.tick(demand=None)
    (mode,) = [d for d in decisions if isinstance(d, SetMode)]
    assert mode.reason == (
        "gateway stats stale for 0 s: holding replicas and weights, no scale-down until they return"
    )
    assert any(isinstance(d, Alert) and d.topic == "metrics-stale" for d in decisions)
    scenario.run(demand=None, seconds=120)  # far beyond the scale-down cooldown
    assert scenario.state.mode is Mode.SAFE
    assert {pool: scenario.desired(pool) for pool in before} == before
    assert scenario.weights == weights
    alerts = [d for _, ds, _ in scenario.history for d in ds if isinstance(d, Alert)]
    assert len([a for a in alerts if a.topic == "metrics-stale"]) == 1  # said once
    decisions = scenario.tick(demand=400)
    assert scenario.state.mode is Mode.BURST
    assert scenario.state.stale_since is None


@pytest.mark.parametrize(
    ("action", "running_spot", "expected_spot"),
    [
        pytest.param("refuse_growth", 1, 2, id="refuse-growth-grows-while-it-fits"),
        pytest.param("hold", 1, 1, id="hold-keeps-current-size"),
        pytest.param("shed", 4, 2, id="shed-cuts-to-what-fits"),
        pytest.param("refuse_growth", 4, 4, id="refuse-growth-never-cuts"),
    ],
)
def test_budget_cap_limits_burst_per_action(action, running_spot, expected_spot):
    config = scenario_config(budget={"max_burst_usd_per_hour": 2.5, "action": action})
    scenario = Scenario(config, running={"private": 2, "spot": running_spot})
    decisions = scenario.tick(demand=600)
    scale = {d.pool: d for d in decisions if isinstance(d, ScalePool)}
    assert scale["spot"].replicas == expected_spot
    assert scale["ondemand"].replicas == 0  # $3/h never fits in what is left
    assert "budget: burst would cost" in scale["spot"].reason or expected_spot == 4
    assert scenario.state.budget_limited
    assert any(isinstance(d, Alert) and d.topic == "budget" for d in decisions)


def test_monthly_cap_reached_stops_burst_growth():
    config = scenario_config(budget={"monthly_cap_usd": 100, "action": "refuse_growth"})
    scenario = Scenario(config)
    scenario.spent_this_month = 100.5
    scenario.tick(demand=400)
    assert scenario.desired("spot") == 0
    budget_alerts = [
        d for d in scenario.history[-1][1] if isinstance(d, Alert) and d.topic == "budget"
    ]
    assert "monthly cap $100.00 reached" in budget_alerts[0].reason


def test_noisy_load_does_not_flap():
    scenario = Scenario(scenario_config(policy={"scale_down_cooldown_seconds": 60}))
    noise = random.Random(7)
    sizes = []
    for _ in range(300):  # 10 minutes of ±25% noise around a level needing ~2.5 spot
        scenario.tick(demand=320 * noise.uniform(0.75, 1.25))
        sizes.append(scenario.desired("spot"))
    changes = sum(1 for i in range(1, len(sizes)) if sizes[i] != sizes[i - 1])
    assert changes <= 3, f"spot size changed {changes} times: {sizes}"


def test_burst_returns_to_standby_after_the_cooldown():
    scenario = Scenario(scenario_config(policy={"scale_down_cooldown_seconds": 30}))
    scenario.run(demand=400, seconds=40)
    assert scenario.desired("spot") == 4
    scenario.run(demand=100, seconds=20)
    assert scenario.desired("spot") == 4  # inside the cooldown
    assert scenario.weights["private"] == 99  # private covers it; spot keeps a trickle
    scenario.run(demand=100, seconds=20)
    assert scenario.desired("spot") == 0
    scenario.run(demand=100, seconds=4)
    assert scenario.state.pools["spot"].status == "standby"
    assert scenario.state.mode is Mode.NORMAL


def test_stalled_spot_capacity_falls_back_to_on_demand():
    scenario = Scenario(scenario_config())
    scenario.pools["spot"].stuck = True
    scenario.run(demand=300, seconds=58)  # under three 20 s cold starts: still waiting
    assert scenario.desired("ondemand") == 0
    scenario.run(demand=300, seconds=6)
    assert scenario.desired("ondemand") == 3  # 160 rps overflow at 70 rps per replica
    assert scenario.desired("spot") == 3


def test_weights_never_go_to_a_pool_without_ready_replicas():
    scenario = Scenario(scenario_config())
    for _ in range(15):
        scenario.tick(demand=500)
        for pool, share in scenario.weights.items():
            assert share == 0 or scenario.ready(pool) > 0, f"{share}% to unready {pool}"


def test_no_ready_replica_anywhere_keeps_weights_and_alerts():
    scenario = Scenario(scenario_config())
    scenario.run(demand=100, seconds=4)
    scenario.pools["private"].broken = True
    decisions = scenario.tick(demand=100)
    assert not [d for d in decisions if isinstance(d, SetWeights)]
    assert any(isinstance(d, Alert) and d.topic == "no-ready-replica" for d in decisions)


def test_restart_from_saved_state_decides_the_same():
    """The loop stores the state as JSON after every tick: a restart changes nothing."""
    first, second = Scenario(scenario_config()), Scenario(scenario_config())
    demands = [100, 300, 420, 420, 150, 150, 150]
    for demand in demands[:4]:
        first.tick(demand)
        second.tick(demand)
    second.state = PolicyState.from_json(second.state.to_json())
    assert second.state == first.state
    for demand in demands[4:]:
        assert first.tick(demand) == second.tick(demand)


def test_unknown_capacity_is_learned_from_measurements_before_sizing():
    config = scenario_config(pools={"private": {"capacity_rps": None}})
    scenario = Scenario(config)
    decisions = scenario.tick(demand=300)
    assert all("no replica capacity measured yet" in d.reason for d in decisions)
    assert scenario.desired("spot") == 0


def test_cooldown_window_keeps_only_what_can_still_be_its_maximum():
    """The compact window gives the same answer as the max over every target."""
    noise = random.Random(3)
    recent: tuple[tuple[float, int], ...] = ()
    everything: list[tuple[float, int]] = []
    for second in range(0, 600, 2):
        target = noise.randint(0, 6)
        everything.append((second, target))
        desired, recent = sizing.stabilize(target, recent, second, cooldown_s=30)
        assert desired == max(count for at, count in everything if second - at < 30)
        assert len(recent) <= 7


def test_no_demand_and_no_measurement_keeps_every_pool_at_its_floor():
    config = scenario_config(pools={"private": {"capacity_rps": None}})
    scenario = Scenario(config)
    scenario.run(demand=0, seconds=10)
    assert (scenario.desired("private"), scenario.desired("spot")) == (2, 0)
    assert scenario.weights == {"private": 100, "spot": 0, "ondemand": 0}


# --- Triton metrics outage ---------------------------------------------------------------


def _modes(scenario: Scenario) -> list[Mode]:
    return [state.mode for _, _, state in scenario.history]


def test_triton_metrics_outage_holds_sizes_and_weights_under_falling_demand_then_returns():
    """The gateway answers (demand is known) but no ready replica's /metrics does: the
    policy holds rather than decide on half the picture."""
    scenario = Scenario(scenario_config(policy={"stale_after_seconds": 10}))
    scenario.run(demand=400, seconds=40)
    assert scenario.state.mode is Mode.BURST
    before = {pool: scenario.desired(pool) for pool in ("private", "spot", "ondemand")}
    scenario.pools["private"].metrics_down = scenario.pools["spot"].metrics_down = True
    scenario.run(demand=100, seconds=10)  # 10 s old: not stale yet
    assert scenario.state.mode is Mode.BURST
    decisions = scenario.tick(demand=100)  # 12 s
    assert scenario.state.mode is Mode.SAFE
    reason = (
        "Triton metrics of private, spot unreachable for 12 s: holding replicas and "
        "weights, no scale-down until they return"
    )
    assert [d.reason for d in decisions if isinstance(d, SetMode)] == [reason]
    assert [d.reason for d in decisions if isinstance(d, Alert)] == [reason]
    assert not [d for d in decisions if isinstance(d, SetWeights)]
    weights = dict(scenario.weights)

    scenario.run(demand=100, seconds=120)  # far beyond the 30 s scale-down cooldown
    assert scenario.state.mode is Mode.SAFE
    assert {pool: scenario.desired(pool) for pool in before} == before
    assert scenario.weights == weights
    assert scenario.state.demand_rps == 100  # still shown: the gateway answers
    alerts = [d for _, ds, _ in scenario.history for d in ds if isinstance(d, Alert)]
    assert len([a for a in alerts if a.topic == "metrics-stale"]) == 1

    scenario.pools["private"].metrics_down = scenario.pools["spot"].metrics_down = False
    decisions = scenario.tick(demand=100)
    assert scenario.state.mode in (Mode.NORMAL, Mode.BURST)
    assert scenario.state.stale_since is None
    assert any(isinstance(d, SetWeights) for d in decisions)
    scenario.run(demand=100, seconds=40)
    assert scenario.state.mode is Mode.NORMAL
    assert scenario.desired("spot") == 0


def test_without_safe_mode_a_triton_metrics_outage_shrinks_burst_while_blind():
    """The metrics-outage drill's control: with `safe_mode: false` the policy sizes on
    the gateway's demand alone and scales burst down though it cannot see it."""
    scenario = Scenario(scenario_config(policy={"stale_after_seconds": 10, "safe_mode": False}))
    scenario.run(demand=400, seconds=40)
    spot_before = scenario.desired("spot")
    assert scenario.state.mode is Mode.BURST and spot_before > 0
    scenario.pools["private"].metrics_down = scenario.pools["spot"].metrics_down = True
    scenario.run(demand=100, seconds=60)  # beyond the 30 s cooldown, blind all along
    assert Mode.SAFE not in _modes(scenario)
    assert scenario.desired("spot") < spot_before


def test_without_safe_mode_unknown_demand_still_holds():
    """Gateway stats stale: there is no demand to size by, whatever the switch says."""
    scenario = Scenario(scenario_config(policy={"stale_after_seconds": 10, "safe_mode": False}))
    scenario.run(demand=400, seconds=40)
    before = scenario.desired("spot")
    scenario.run(demand=None, seconds=60)
    assert scenario.state.mode is Mode.SAFE
    assert scenario.desired("spot") == before


def test_triton_metrics_of_one_pool_are_enough_to_hold():
    scenario = Scenario(scenario_config(policy={"stale_after_seconds": 10}))
    scenario.run(demand=400, seconds=40)
    scenario.pools["spot"].metrics_down = True
    scenario.run(demand=400, seconds=12)
    assert scenario.state.mode is Mode.SAFE
    (_, decisions, _) = next(h for h in scenario.history if h[2].mode is Mode.SAFE)
    (mode,) = [d for d in decisions if isinstance(d, SetMode)]
    assert mode.reason.startswith("Triton metrics of spot unreachable for 12 s")


def test_private_replicas_dead_is_failover_not_a_metrics_outage():
    """Killed replicas answer no /metrics either, but they are failed, not unobserved:
    burst takes their traffic."""
    scenario = Scenario(scenario_config(policy={"stale_after_seconds": 10}))
    scenario.run(demand=120, seconds=20)
    scenario.pools["private"].broken = True
    scenario.pools["private"].metrics_down = True
    scenario.run(demand=120, seconds=60)
    assert Mode.SAFE not in _modes(scenario)
    assert scenario.state.mode is Mode.FAILOVER
    assert scenario.weights == {"private": 0, "spot": 100, "ondemand": 0}


def test_a_burst_replica_ready_after_a_90_s_cold_start_is_no_metrics_outage():
    """It was unscrapable for its whole cold start; its first scrape succeeds the tick
    it becomes ready, so its pool's metrics are fresh from the start."""
    config = scenario_config(
        pools={"spot": {"cold_start_seconds": 90}, "ondemand": {"cold_start_seconds": 90}},
        policy={"stale_after_seconds": 10},
    )
    scenario = Scenario(config)
    scenario.run(demand=300, seconds=20)
    assert scenario.desired("spot") > 0 and scenario.ready("spot") == 0
    scenario.run(demand=300, seconds=100)
    assert scenario.ready("spot") == scenario.desired("spot")
    assert Mode.SAFE not in _modes(scenario)
    assert scenario.state.mode is Mode.BURST


# --- interruption notices ----------------------------------------------------------------


def test_a_noticed_burst_replica_is_billed_but_is_no_capacity_and_is_replaced():
    scenario = Scenario(scenario_config())
    scenario.run(demand=300, seconds=60)
    assert (scenario.desired("spot"), scenario.ready("spot")) == (3, 3)
    spot_share = scenario.weights["spot"]

    scenario.pools["spot"].interrupt("spot-0", seconds=120, now=scenario.now)
    decisions = scenario.tick(demand=300)
    scale = {d.pool: d.replicas for d in decisions if isinstance(d, ScalePool)}
    assert scale["spot"] == 3  # the driver starts a replacement within the same size
    assert scale["ondemand"] == 0  # the replacement is arriving: no need for on-demand
    assert scenario.weights["spot"] < spot_share  # shares follow the 2 serving replicas
    assert scenario.state.mode is Mode.BURST
    spot = scenario.snapshot(300).pool("spot")
    assert (spot.ready, spot.starting, spot.draining, spot.running) == (2, 1, 1, 4)
    scenario.tick(demand=300)
    assert scenario.state.pools["spot"].status == "scaling"  # 2 of 3 ready, 1 starting

    scenario.run(demand=300, seconds=20)  # one cold start: the replacement serves
    assert scenario.ready("spot") == 3
    assert scenario.weights["spot"] == spot_share
    scenario.run(demand=300, seconds=120)  # the notice ran out: the old one is gone
    spot = scenario.snapshot(300).pool("spot")
    assert (spot.ready, spot.draining, spot.running) == (3, 0, 3)
    assert scenario.desired("spot") == 3


def test_a_noticed_private_replica_is_covered_by_burst():
    scenario = Scenario(scenario_config())
    scenario.run(demand=120, seconds=20)
    assert scenario.desired("spot") == 0
    scenario.pools["private"].interrupt("private-1", seconds=30, now=scenario.now)
    scenario.tick(demand=120)
    # One private replica serves 70 of 120 rps: burst is sized for the other 50.
    assert scenario.desired("spot") == 1
    assert scenario.state.mode is Mode.BURST


def test_a_warm_burst_floor_is_normal_mode_until_burst_grows_past_it():
    scenario = Scenario(scenario_config(pools={"spot": {"min_replicas": 1}}))
    scenario.run(demand=100, seconds=40)
    assert scenario.desired("spot") == 1
    assert scenario.state.mode is Mode.NORMAL  # a warm replica at its floor is not a burst
    assert scenario.weights["spot"] == 1  # it keeps a trickle, so the gateway can fail over
    scenario.run(demand=300, seconds=10)
    assert scenario.desired("spot") > 1
    assert scenario.state.mode is Mode.BURST
