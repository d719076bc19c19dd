"""Which module runs a pool, by the pool's `driver:` key.

Adding a pool driver is one module with a `for_pools` factory and one entry here.
Entries name their module rather than import it: the config validates `driver:`
against these names, and the CLI starts without importing the Kubernetes client
for a config that runs only local pools.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from spillover.drivers.pools import PoolDriver


class PoolSpec(Protocol):
    """What the registry reads of a pool's config (`spillover.config.PoolConfig`; the
    config imports this table, so the table does not import the config)."""

    @property
    def name(self) -> str: ...

    @property
    def driver(self) -> str: ...


@dataclass(frozen=True)
class DriverContext:
    """What a driver may need beyond its pools' config."""

    run_dir: Path
    """The local stack's run directory (its state file, gateway socket, logs)."""


class DriverFactory(Protocol):
    def __call__(
        self, pools: Sequence[PoolSpec], context: DriverContext
    ) -> Mapping[str, PoolDriver]:
        """A driver for each of `pools` (one may run several), by pool name."""
        ...


@dataclass(frozen=True)
class DriverEntry:
    factory: str
    """`module:function` of the driver's DriverFactory."""
    section: str | None
    """The pool config section the driver reads (e.g. `kubernetes:`), if any."""
    summary: str
    """One line for the config schema's description."""


DRIVERS: Mapping[str, DriverEntry] = {
    "local": DriverEntry(
        "spillover.drivers.local.driver:for_pools",
        None,
        "tritonserver processes on 127.0.0.1",
    ),
    "kubernetes": DriverEntry(
        "spillover.drivers.kubernetes:for_pools",
        "kubernetes",
        "a Deployment's scale subresource",
    ),
    "simulated": DriverEntry(
        "spillover.drivers.simulated:for_pools",
        None,
        "replicas on a simulated clock (what `spillover sim` runs every pool on)",
    ),
}


def build_drivers(pools: Sequence[PoolSpec], context: DriverContext) -> dict[str, PoolDriver]:
    """Every pool's driver, by pool name; pools of one driver are handed to it together."""
    drivers: dict[str, PoolDriver] = {}
    for name, entry in DRIVERS.items():
        mine = [pool for pool in pools if pool.driver == name]
        if mine:
            drivers.update(_factory(entry)(mine, context))
    return drivers


def _factory(entry: DriverEntry) -> DriverFactory:
    module, _, function = entry.factory.partition(":")
    factory: DriverFactory = getattr(importlib.import_module(module), function)
    return factory
