"""The local stack's pools carry each config pool's capacity to the replicas it starts."""

from __future__ import annotations

import pytest

from spillover.config_cli import LOCAL_DEFAULT
from spillover.drivers.local.layout import LocalLayout, LocalPool
from spillover.local.cli import config_pools
from spillover.local.stack import LocalStack


def test_the_packaged_pools_hold_their_replicas_to_the_declared_capacity() -> None:
    pools = {pool.name: pool for pool in config_pools(LOCAL_DEFAULT)}
    assert (pools["private"].capacity_rps, pools["burst"].capacity_rps) == (300, 200)


def test_a_capacity_that_is_not_positive_names_the_pool() -> None:
    with pytest.raises(ValueError, match="pool burst: capacity_rps"):
        LocalPool("burst", 0, 1, capacity_rps=0)


def test_the_gateway_caps_each_replica_at_its_pools_declared_capacity(tmp_path) -> None:
    layout = LocalLayout(tuple(config_pools(LOCAL_DEFAULT)), port_base=8700)
    spec = LocalStack(tmp_path / "run")._build_gateway_spec(layout)
    maxconn = {slot.pool: slot.maxconn for slot in spec.slots}
    assert maxconn == {"private": 60, "burst": 40}  # 300 and 200 rps x 0.2 s
