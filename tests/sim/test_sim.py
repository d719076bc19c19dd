"""The fleet simulator: the real loop on a simulated clock, checked against closed forms."""

from __future__ import annotations

from pathlib import Path

import pytest

from spillover.config import ConfigError, SpilloverConfig, parse_config
from spillover.drivers.simulated import SimulatedPool
from spillover.sim import baselines
from spillover.sim.run import run
from spillover.sim.settings import parse_settings
from spillover.sim.traces import TraceError, flat, read_csv, steps
from spillover.sim.world import World


def fleet(**spot: object) -> SpilloverConfig:
    """Private 2 x 100 rps at $0.50/h; spot 0-8 x 100 rps at $1/h; on-demand at $3/h."""
    return parse_config(
        {
            "pools": [
                {
                    "name": "private",
                    "role": "private",
                    "capacity_type": "owned",
                    "min_replicas": 2,
                    "max_replicas": 2,
                    "capacity_rps": 100,
                    "cold_start_seconds": 10,
                    "price": {"usd_per_replica_hour": 0.5, "source": "owned"},
                },
                {
                    "name": "spot",
                    "role": "burst",
                    "capacity_type": "spot",
                    "max_replicas": 8,
                    "capacity_rps": 100,
                    "cold_start_seconds": 30,
                    "price": {"usd_per_replica_hour": 1.0, "source": "spot"},
                    **spot,
                },
                {
                    "name": "ondemand",
                    "role": "burst",
                    "capacity_type": "on-demand",
                    "max_replicas": 8,
                    "capacity_rps": 100,
                    "cold_start_seconds": 30,
                    "price": {"usd_per_replica_hour": 3.0, "source": "on-demand"},
                },
            ],
            "policy": {"tick_seconds": 2, "scale_down_cooldown_seconds": 60},
        }
    )


def world_settings(**spot: object):
    """Fixed 30 s burst cold starts, 10 s private; constant prices; no interruptions."""
    fixed = {"cold_start": [{"name": "start", "median_s": 30, "sigma": 0}], "prices": []}
    return parse_settings(
        {
            "pools": {
                "private": {"cold_start": [{"name": "load", "median_s": 10, "sigma": 0}]},
                "spot": {**fixed, "interruptions_per_replica_hour": 0, **spot},
                "ondemand": fixed,
            }
        }
    )


def test_a_flat_trace_costs_the_closed_form(tmp_path: Path) -> None:
    # 250 rps: private takes 2 x 70 (its 70% target), the 110 left need 2 spot replicas.
    result = run("spillover", fleet(), world_settings(), flat(250, 3600), tmp_path / "l.db")
    assert result.cost_by_pool["private"] == pytest.approx(2 * 0.5, rel=1e-9)
    assert result.cost_by_pool["spot"] == pytest.approx(2 * 1.0, rel=1e-9)
    assert result.cost_by_pool["ondemand"] == 0
    assert result.total_cost == pytest.approx(3.0, rel=1e-9)
    assert result.totals.failed == 0
    assert result.totals.within_slo >= 0.9999 * 250 * 3600  # the M/D/c tail: a few late


def test_private_only_below_capacity_costs_the_lower_bound(tmp_path: Path) -> None:
    config, settings, trace = fleet(), world_settings(), flat(100, 1800)
    private_only = baselines.variant(config, "private only")
    assert private_only is not None
    result = run("private only", private_only, settings, trace, tmp_path / "l.db")
    bound = baselines.lower_bound(config, settings, trace)
    assert result.total_cost == pytest.approx(bound.total_cost, rel=1e-9)
    assert bound.cost_by_pool["spot"] == 0
    assert result.totals.failed == 0


def test_cold_starts_are_respected(tmp_path: Path) -> None:
    ready_at: dict[int, int] = {}

    def watch(world: World, second: int) -> None:
        ready_at[second] = world.drivers["spot"].counts["ready"]

    # 100 rps, then 400 at 300 s: spot is asked for at once, ready one cold start later.
    trace = steps([(300, 100.0), (600, 400.0)])
    result = run(
        "spillover", fleet(), world_settings(), trace, tmp_path / "l.db", each_second=watch
    )
    first_ready = min(second for second, ready in ready_at.items() if ready)
    assert 300 + 30 <= first_ready <= 300 + 30 + 2  # cold start, plus up to one tick
    assert result.totals.failed > 0  # the 30 s before it was ready overflowed private


def test_a_notice_keeps_the_replica_billed_until_it_runs_out() -> None:
    now = [0.0]
    pool = SimulatedPool("spot", 30, clock=lambda: now[0])
    pool.scale("spot", 2)
    pool.advance(30)
    assert pool.counts["ready"] == 2
    now[0] = 100.0
    assert pool.interrupt(1, 100.0, 120.0, lambda names, k: names[:k]) == 1
    assert (pool.counts["ready"], pool.counts["draining"], pool.running) == (1, 1, 2)
    pool.advance(219.0)
    assert pool.counts["draining"] == 1
    pool.advance(220.0)
    assert (pool.counts["draining"], pool.running) == (0, 1)


def test_a_spot_interruption_is_replaced_before_its_notice_runs_out(tmp_path: Path) -> None:
    seen: dict[int, tuple[int, int]] = {}

    def interrupt_once(world: World, second: int) -> None:
        spot = world.drivers["spot"]
        if second == 600:
            assert spot.interrupt(1, world.now, 120.0, lambda names, k: names[:k]) == 1
        seen[second] = (spot.counts["ready"], spot.counts["draining"])

    result = run(
        "spillover",
        fleet(),
        world_settings(),
        flat(250, 900),
        tmp_path / "l.db",
        each_second=interrupt_once,
    )
    before = seen[599][0]
    assert before >= 2
    assert seen[600] == (before - 1, 1)
    # The replacement started at the next tick and was ready (30 s) while the old
    # replica still had notice left (120 s).
    back = min(s for s in range(600, 900) if seen[s][0] >= before)
    assert back <= 600 + 2 + 30 < 600 + 120
    assert seen[back][1] == 1
    assert seen[720][1] == 0
    # Only until the next tick re-routes the share the drained replica had.
    assert result.totals.failed < 250 * 2


def test_the_reactive_baseline_lags_a_step(tmp_path: Path) -> None:
    covered: dict[str, int] = {}

    def watcher(name: str):
        def watch(world: World, second: int) -> None:
            capacity = sum(d.counts["ready"] * world.capacity[n] for n, d in world.drivers.items())
            if second >= 300 and capacity >= 1500 and name not in covered:
                covered[name] = second

        return watch

    trace = steps([(300, 100.0), (900, 1500.0)])
    config, settings = fleet(), world_settings()
    ours = run(
        "spillover", config, settings, trace, tmp_path / "a.db", each_second=watcher("policy")
    )
    hpa = run(
        "reactive",
        config,
        settings,
        trace,
        tmp_path / "b.db",
        "reactive",
        each_second=watcher("hpa"),
    )
    assert covered["policy"] <= 300 + 2 + 30
    assert covered["hpa"] >= covered["policy"] + 15  # at least one HPA sync behind
    assert hpa.totals.failed > ours.totals.failed
    assert hpa.totals.within_slo < ours.totals.within_slo


def test_a_bad_csv_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "trace.csv"
    path.write_text("second,rps\n0,10\n1,ten\n")
    with pytest.raises(TraceError, match=r"trace.csv:3: .*'1,ten'"):
        read_csv(path)
    path.write_text("second,rps\n0,10\n5,20\n")
    trace = read_csv(path)
    assert list(trace.rps) == [10, 10, 10, 10, 10, 20]


def test_a_bad_settings_key_is_named() -> None:
    with pytest.raises(ConfigError, match=r"pools\.spot\.notice_seconds"):
        parse_settings({"pools": {"spot": {"notice_seconds": -1}}})


def test_the_calendar_run_has_the_traces_known_events_and_plain_runs_do_not() -> None:
    from spillover.sim.traces import SINGLES_DAY_AT, shop_week

    trace = shop_week(days=0.5, from_day=2.75)
    assert [(offset, name) for offset, name, _, _ in trace.known] == [
        (SINGLES_DAY_AT - 2.75 * 86400, "11.11")
    ]
    calendar = baselines.variant(fleet(), "spillover + calendar", trace)
    assert calendar is not None
    (event,) = calendar.policy.known_events
    assert event.start.timestamp() == trace.start + SINGLES_DAY_AT - 2.75 * 86400
    assert event.peak_multiple == 10
    assert baselines.variant(fleet(), "spillover + calendar", flat(100, 60)) is None
    assert baselines.variant(fleet(), "spillover", trace) == fleet()


def test_the_readme_sim_yaml_sample_is_valid() -> None:
    import re

    import yaml

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("## Simulate a fleet") :]
    sample = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert sample is not None
    settings = parse_settings(yaml.safe_load(sample.group(1)))
    assert [fault.kind for fault in settings.faults] == [
        "site-loss",
        "metrics-outage",
        "burst-api-outage",
    ]
