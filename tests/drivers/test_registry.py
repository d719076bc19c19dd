"""The driver registry: a pool's `driver:` key picks its driver, and adding one is a
module plus an entry."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from spillover.config import ConfigError, PoolConfig, parse_config
from spillover.drivers import registry
from spillover.drivers.pools import PoolDriver, ReplicaTarget
from spillover.drivers.registry import DRIVERS, DriverContext, DriverEntry, build_drivers

PRICE = {"usd_per_replica_hour": 1.0, "source": "test"}


class EchoDriver:
    """The smallest driver there is: it remembers the sizes it was asked for."""

    def __init__(self, pools: Sequence[PoolConfig]) -> None:
        self.sizes = {pool.name: pool.min_replicas for pool in pools}

    def replicas(self) -> list[ReplicaTarget]:
        return []

    def scale(self, pool: str, replicas: int) -> None:
        self.sizes[pool] = replicas


def for_pools(pools: Sequence[PoolConfig], context: DriverContext) -> Mapping[str, PoolDriver]:
    driver = EchoDriver(pools)
    return dict.fromkeys((pool.name for pool in pools), driver)


def pools_config(*drivers: str) -> list[dict[str, object]]:
    return [
        {"name": f"burst{i}", "role": "burst", "capacity_type": "spot"}
        | {"max_replicas": 2, "price": PRICE, "driver": driver}
        for i, driver in enumerate(drivers)
    ]


@pytest.mark.parametrize("name", list(DRIVERS))
def test_every_entry_names_a_factory_that_exists(name: str) -> None:
    module, _, function = DRIVERS[name].factory.partition(":")
    assert callable(getattr(__import__(module, fromlist=[function]), function))


def test_a_new_driver_is_one_module_and_one_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = DriverEntry(f"{__name__}:for_pools", None, "sizes kept in memory")
    monkeypatch.setattr(registry, "DRIVERS", {**DRIVERS, "echo": entry})
    monkeypatch.setattr("spillover.config.DRIVERS", registry.DRIVERS)
    config = parse_config({"pools": pools_config("echo", "echo")})
    drivers = build_drivers(config.pools, DriverContext(run_dir=Path("unused")))
    assert set(drivers) == {"burst0", "burst1"}
    assert drivers["burst0"] is drivers["burst1"]  # one driver may run several pools
    drivers["burst1"].scale("burst1", 2)
    assert isinstance(drivers["burst1"], EchoDriver)
    assert drivers["burst1"].sizes == {"burst0": 0, "burst1": 2}


def test_an_unknown_driver_is_named_with_the_known_ones() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({"pools": pools_config("ec2")})
    assert "pools[0].driver: unknown driver 'ec2'; one of: local, kubernetes" in str(raised.value)


def test_a_driver_without_its_config_section_is_refused() -> None:
    with pytest.raises(ConfigError, match="driver 'kubernetes' needs a `kubernetes` section"):
        parse_config({"pools": pools_config("kubernetes")})


def test_only_the_drivers_a_config_uses_are_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    """A local-only config never imports the Kubernetes client's driver."""
    broken = DriverEntry("spillover.no_such_module:for_pools", None, "never imported")
    monkeypatch.setattr(registry, "DRIVERS", {**DRIVERS, "kubernetes": broken})
    config = parse_config({"pools": pools_config("local")})
    drivers = build_drivers(config.pools, DriverContext(run_dir=Path("unused")))
    assert set(drivers) == {"burst0"}
