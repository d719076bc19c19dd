"""Where every piece of the local stack listens.

Each pool owns a fixed number of slots (its max replicas) and every slot has fixed
ports derived from one port base, so the gateway's config lists every slot once
and never changes while pools scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spillover.drivers.local.errors import StackError
from spillover.drivers.tritonserver import ReplicaPorts

GATEWAY_PORT_OFFSETS = {"http": 0, "grpc": 1, "metrics": 2}
FIRST_REPLICA_OFFSET = 10
PORTS_PER_REPLICA = 3


@dataclass(frozen=True)
class LocalPool:
    """One local pool: identical Triton replicas, each standing for one GPU replica."""

    name: str
    """Pool name, also the prefix of its replicas' names (`private-0`)."""
    initial_replicas: int
    """Replicas `local up` starts."""
    max_replicas: int
    """Slots reserved for this pool; `local scale` can't go above it."""
    capacity_rps: float | None = None
    """Requests/s each replica serves, as its pool's config declares; its replicas are
    held to it (service_time.py). None: they serve as fast as this CPU lets them."""

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"pool name {self.name!r} must be letters, digits and _")
        if not 0 <= self.initial_replicas <= self.max_replicas:
            raise ValueError(
                f"pool {self.name}: replicas must be between 0 and max_replicas "
                f"({self.max_replicas}), got {self.initial_replicas}"
            )
        if self.capacity_rps is not None and not self.capacity_rps > 0:
            raise ValueError(
                f"pool {self.name}: capacity_rps must be positive, got {self.capacity_rps}"
            )


@dataclass(frozen=True)
class Slot:
    """A place for one replica: its name, pool and ports."""

    name: str
    pool: str
    index: int
    ports: ReplicaPorts


@dataclass(frozen=True)
class LocalLayout:
    """Pools and ports of one local stack."""

    pools: tuple[LocalPool, ...] = (
        LocalPool("private", initial_replicas=2, max_replicas=4),
        LocalPool("burst", initial_replicas=0, max_replicas=4),
    )
    """Pools in routing-preference order: private first."""
    port_base: int = 8000
    """Gateway HTTP port; gRPC, metrics and every replica's ports follow from it."""
    slots: tuple[Slot, ...] = field(init=False)

    def __post_init__(self) -> None:
        names = [pool.name for pool in self.pools]
        if len(set(names)) != len(names):
            raise ValueError(f"pool names must be unique, got {names}")
        last_port = self.port_base + FIRST_REPLICA_OFFSET
        last_port += PORTS_PER_REPLICA * sum(pool.max_replicas for pool in self.pools)
        if not self.port_base >= 1024 or last_port > 65535:
            raise ValueError(f"port base {self.port_base} leaves ports outside 1024-65535")
        object.__setattr__(self, "slots", tuple(self._all_slots()))

    def gateway_port(self, kind: str) -> int:
        return self.port_base + GATEWAY_PORT_OFFSETS[kind]

    def pool(self, name: str) -> LocalPool:
        for pool in self.pools:
            if pool.name == name:
                return pool
        raise KeyError(f"unknown pool {name!r}; pools are {', '.join(self.pool_names)}")

    @property
    def pool_names(self) -> list[str]:
        return [pool.name for pool in self.pools]

    def pool_slots(self, name: str) -> list[Slot]:
        self.pool(name)
        return [slot for slot in self.slots if slot.pool == name]

    def slots_to_scale(self, pool: str, replicas: int) -> list[Slot]:
        """The pool's slots, once it is known and `replicas` fits them."""
        if pool not in self.pool_names:
            raise StackError(f"unknown pool {pool!r}; pools are {', '.join(self.pool_names)}")
        maximum = self.pool(pool).max_replicas
        if not 0 <= replicas <= maximum:
            raise StackError(f"pool {pool} takes 0 to {maximum} replicas, not {replicas}")
        return self.pool_slots(pool)

    def _all_slots(self):
        port = self.port_base + FIRST_REPLICA_OFFSET
        for pool in self.pools:
            for index in range(pool.max_replicas):
                yield Slot(
                    f"{pool.name}-{index}", pool.name, index, ReplicaPorts(port, port + 1, port + 2)
                )
                port += PORTS_PER_REPLICA
