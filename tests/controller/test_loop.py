"""The loop: failures inside a tick are logged and survived; a restart resumes."""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import replace

import pytest

from spillover.controller.actuators import Actuators
from spillover.controller.decisions import Mode
from spillover.controller.exporter import Exporter
from spillover.controller.ledger import Ledger
from spillover.controller.loop import ControllerLoop
from spillover.controller.snapshot import PoolObservation, ReplicaObservation, Snapshot
from spillover.errors import PermanentError, TemporaryError
from spillover.settings import ActuationSettings
from tests.controller.simulated import START, scenario_config


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        self.now += 2
        return self.now


class Observer:
    def __init__(self, clock: FakeClock, demand: float | None = 100.0) -> None:
        self.clock, self.demand, self.fail = clock, demand, False

    def observe(self) -> Snapshot:
        if self.fail:
            raise ConnectionError("gateway socket vanished")
        ready = tuple(ReplicaObservation(f"private-{i}", "ready", START - 60) for i in range(2))
        return Snapshot(self.clock.now, self.demand, (PoolObservation("private", ready),))

    def gateway_counters(self):
        return {"private": (int(self.clock.now - START) * 10, 0)}


class Driver:
    def __init__(self, failures: list[Exception]) -> None:
        self.failures, self.calls = failures, []

    def scale(self, pool: str, replicas: int) -> None:
        self.calls.append((pool, replicas))
        if self.failures:
            raise self.failures.pop(0)


class Gateway:
    def __init__(self) -> None:
        self.shares = []

    def set_weights(self, shares) -> None:
        self.shares.append(dict(shares))


def make_loop(tmp_path, clock, observer, driver):
    config = scenario_config(policy={"tick_seconds": 0.01})  # run() waits real ticks
    actuators = Actuators(
        {pool.name: driver for pool in config.pools},
        Gateway(),
        ActuationSettings(),
        sleep=lambda _: None,
    )
    return ControllerLoop(
        config, observer, actuators, Ledger(tmp_path / "controller.db"), clock=clock
    )


def test_a_failing_actuator_is_retried_logged_and_does_not_stop_the_loop(tmp_path, caplog):
    clock = FakeClock()
    driver = Driver([TemporaryError("busy"), RuntimeError("boom")])
    loop = make_loop(tmp_path, clock, Observer(clock), driver)
    with caplog.at_level(logging.ERROR):
        report = loop.tick()
    assert [f.decision.describe() for f in report.failures] == ["scale private to 2"]
    assert "Traceback" in caplog.text and "boom" in caplog.text
    assert driver.calls[:2] == [("private", 2), ("private", 2)]  # the temporary one retried
    assert loop.tick().failures == []  # the next tick applies it again


def test_an_observer_failure_is_safe_mode_not_a_crash(tmp_path):
    clock = FakeClock()
    observer = Observer(clock)
    loop = make_loop(tmp_path, clock, observer, Driver([]))
    loop.tick()
    observer.fail = True
    stop = threading.Event()
    assert loop.run(stop, max_ticks=3) == 3
    assert loop.state.mode is Mode.SAFE
    assert loop.state.desired("private") == 2


def test_a_restarted_loop_resumes_the_stored_state_and_spend(tmp_path):
    clock = FakeClock()
    first = make_loop(tmp_path, clock, Observer(clock, demand=300), Driver([]))
    for _ in range(5):
        first.tick()
    first.ledger.close()
    second = make_loop(tmp_path, clock, Observer(clock, demand=300), Driver([]))
    second.restore()
    assert second.state == first.state
    second.tick()
    rows = {row.key: row for row in second.ledger.spend(START, clock.now + 1, by="pool")}
    # Two private replicas charged from the first tick to the last, across the restart.
    charged_seconds = clock.now - (START + 2)
    assert abs(rows["private"].replica_hours - 2 * charged_seconds / 3600) < 1e-9


def test_a_metrics_port_in_use_is_named_with_what_to_change():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        exporter = Exporter(scenario_config())
        with pytest.raises(PermanentError, match=f"controller.metrics_port {port}.*free port"):
            exporter.serve("127.0.0.1", port)


def test_the_loop_charges_the_configs_categories_and_the_observed_busy_share(tmp_path):
    """What the loop hands the ledger each tick: the config's category rates and the
    busy share the observer measured."""
    clock = FakeClock()
    observer = Observer(clock)
    original = observer.observe

    def with_busy_share() -> Snapshot:
        snapshot = original()
        (pool,) = snapshot.pools
        return Snapshot(snapshot.at, snapshot.demand_rps, (replace(pool, busy_share=0.4),))

    observer.observe = with_busy_share
    config = scenario_config(
        policy={"tick_seconds": 0.01},
        costs={"operations": [{"name": "racks", "hours_per_month": 730, "usd_per_hour": 36,
                               "source": "colo contract"}]},
    )  # fmt: skip
    actuators = Actuators(
        {p.name: Driver([]) for p in config.pools}, Gateway(), sleep=lambda _: None
    )
    loop = ControllerLoop(config, observer, actuators, Ledger(tmp_path / "c.db"), clock=clock)
    for _ in range(3):
        loop.tick()
    bill = loop.ledger.bill(START, clock.now + 1)
    operations = [line for line in bill.lines if line.category == "operations"]
    # An hour of operations per hour, split evenly: 4 s of ticks over the config's pools.
    assert sum(line.quantity for line in operations) == pytest.approx(4 / 3600)
    assert {line.source.split(";")[0] for line in operations} == {"racks: colo contract"}
    (private,) = [use for use in bill.pools if use.pool == "private"]
    assert private.used_usd / (private.used_usd + private.idle_usd) == pytest.approx(0.4)
