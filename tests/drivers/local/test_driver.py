"""The local pool driver as the controller meets it: built by the registry, one for every
local pool, and its errors say at the source whether a retry within the tick may help
(the actuators retry TemporaryError and only that)."""

from __future__ import annotations

from pathlib import Path

import pytest

from spillover.config import load_config
from spillover.config_cli import LOCAL_DEFAULT
from spillover.drivers.local.driver import LocalPoolDriver
from spillover.drivers.local.layout import LocalLayout, LocalPool
from spillover.drivers.local.state import RunDir, StackState
from spillover.drivers.registry import DriverContext, build_drivers
from spillover.errors import PermanentError, TemporaryError


def _stack_without_gateway(tmp_path: Path) -> LocalPoolDriver:
    """A run directory whose stack has its state but no gateway answering: as after a
    gateway crash, or between `up` writing the state and HAProxy listening."""
    layout = LocalLayout((LocalPool("private", 1, 2), LocalPool("burst", 0, 2)), port_base=20000)
    RunDir(tmp_path / "run").save(StackState.new(layout))
    return LocalPoolDriver(tmp_path / "run")


def test_the_registry_gives_every_local_pool_one_shared_driver(tmp_path: Path):
    pools = load_config(LOCAL_DEFAULT).pools
    drivers = build_drivers(pools, DriverContext(run_dir=tmp_path / "run"))
    assert set(drivers) == {"private", "burst"}
    assert isinstance(drivers["private"], LocalPoolDriver)
    assert drivers["burst"] is drivers["private"], "replicas would be listed once per pool"
    assert drivers["private"].run_dir.path == (tmp_path / "run").resolve()


def test_scaling_without_a_stack_is_permanent_and_says_how_to_start_one(tmp_path: Path):
    with pytest.raises(PermanentError, match=r"no local stack in .*spillover local .* up"):
        LocalPoolDriver(tmp_path / "run").scale("burst", 1)


def test_listing_without_a_stack_is_permanent_too(tmp_path: Path):
    with pytest.raises(PermanentError, match="no local stack in"):
        LocalPoolDriver(tmp_path / "run").replicas()


@pytest.mark.parametrize(
    ("pool", "replicas", "message"),
    [
        pytest.param("gpu", 1, "unknown pool 'gpu'; pools are private, burst", id="unknown-pool"),
        pytest.param("burst", 3, "pool burst takes 0 to 2 replicas, not 3", id="above-max"),
    ],
)
def test_a_size_the_stack_cannot_take_is_permanent(
    tmp_path: Path, pool: str, replicas: int, message: str
):
    with pytest.raises(PermanentError, match=message):
        _stack_without_gateway(tmp_path).scale(pool, replicas)


def test_an_unreachable_gateway_is_temporary_with_a_short_delay(tmp_path: Path):
    with pytest.raises(TemporaryError, match="no gateway answers on .*haproxy.sock") as raised:
        _stack_without_gateway(tmp_path).scale("burst", 1)
    assert raised.value.delay == 0.5


def test_an_operating_system_error_is_temporary_and_names_the_pool(tmp_path: Path):
    (tmp_path / "run").write_text("not a directory")  # its folder cannot be made
    with pytest.raises(TemporaryError, match="scaling burst to 1: .*File exists"):
        LocalPoolDriver(tmp_path / "run").scale("burst", 1)
