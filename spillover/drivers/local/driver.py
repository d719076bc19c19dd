"""The pool driver of `driver: local` pools: the local stack's replicas, sized by converge."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from spillover.config import PoolConfig
from spillover.drivers.local.converge import Converger
from spillover.drivers.local.replicas import ReplicaProcesses
from spillover.drivers.local.state import RunDir
from spillover.drivers.pools import PoolDriver, ReplicaTarget
from spillover.drivers.processes import is_running, started_at_epoch
from spillover.drivers.registry import DriverContext
from spillover.drivers.tritonserver import is_ready
from spillover.errors import SpilloverError, TemporaryError


def for_pools(pools: Sequence[PoolConfig], context: DriverContext) -> Mapping[str, PoolDriver]:
    """Local pools share one driver: its replicas are listed once per tick, not per pool."""
    driver = LocalPoolDriver(context.run_dir)
    return dict.fromkeys((pool.name for pool in pools), driver)


class LocalPoolDriver:
    """Pools of tritonserver processes on 127.0.0.1 (the local stack)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = RunDir(run_dir)
        self.converger = Converger(ReplicaProcesses(self.run_dir))

    def replicas(self) -> list[ReplicaTarget]:
        state = self.run_dir.require()
        records = list(state.replicas.values())
        ports = {slot.name: slot.ports for slot in state.layout.slots}
        alive = {record.name: is_running(record.pid, record.started) for record in records}
        with ThreadPoolExecutor(max_workers=8) as pool:
            ready = dict(
                zip(
                    alive,
                    pool.map(lambda name: alive[name] and is_ready(ports[name].http), alive),
                    strict=True,
                )
            )
        return [
            ReplicaTarget(
                name=record.name,
                pool=record.pool,
                alive=alive[record.name],
                ready=ready[record.name],
                started_at=started_at_epoch(record.started),
                metrics_url=f"http://127.0.0.1:{ports[record.name].metrics}/metrics",
                draining=record.interrupt_at is not None,
                gateway_server=record.name,
            )
            for record in records
        ]

    def scale(self, pool: str, replicas: int) -> None:
        """Converge `pool` a step towards `replicas`. Our errors say already whether a
        retry may help; only the operating system's are not ours to have said so."""
        try:
            self.converger.converge(pool, replicas)
        except SpilloverError:
            raise
        except OSError as error:  # a busy port, a full disk: may clear by the next tick
            raise TemporaryError(f"scaling {pool} to {replicas}: {error}") from error
