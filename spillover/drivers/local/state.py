"""The local stack's run directory: what is running, on which ports, with which PIDs.

Written before anything waits on a process, so `spillover local down` can stop
everything even when the command that started it was killed half-way.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from spillover.drivers.local.errors import StackError
from spillover.drivers.local.layout import LocalLayout, LocalPool

STATE_FILE = "state.json"
LOCK_FILE = "lock"


class StateUnreadableError(StackError):
    """The run directory's state file is corrupt or from another version."""


@dataclass
class ReplicaRecord:
    """A replica the stack started."""

    name: str
    pool: str
    pid: int
    started: int
    """The process's start time in clock ticks after boot: with pid, its identity."""
    log: str
    interrupt_at: float | None = None
    """Epoch seconds by which it must be stopped: a spot interruption notice, or a scale
    down that took it out of its pool. Out of rotation from then on, stopped once it has
    no request in flight or this passes. None: it stays."""
    stop_requested_at: float | None = None
    """Epoch seconds when its group got SIGTERM; converge forgets it once the group has
    exited, and SIGKILLs a group still there after the grace. None: not stopping."""

    @property
    def leaving(self) -> bool:
        """Given a notice (an interruption, or a scale down) or stopping: it no longer counts
        toward its pool, never joins the gateway again, and keeps its slot until it is gone."""
        return self.interrupt_at is not None or self.stop_requested_at is not None


@dataclass
class StackState:
    """Everything `local` commands need to find the running stack."""

    port_base: int
    pools: list[dict]
    gateway_pid: int | None = None
    gateway_started: int | None = None
    replicas: dict[str, ReplicaRecord] = field(default_factory=dict)
    controller_pid: int | None = None
    controller_started: int | None = None
    weights: dict[str, int] | None = None
    """Pool shares set with `local weights`; None means shares follow ready replicas."""

    @classmethod
    def new(cls, layout: LocalLayout) -> StackState:
        return cls(layout.port_base, [asdict(pool) for pool in layout.pools])

    @property
    def layout(self) -> LocalLayout:
        return LocalLayout(tuple(LocalPool(**pool) for pool in self.pools), self.port_base)

    def pool_replicas(self, pool: str) -> list[ReplicaRecord]:
        return [record for record in self.replicas.values() if record.pool == pool]

    def counted(self, pool: str) -> list[ReplicaRecord]:
        """The pool's replicas that count toward its size, in slot order: every one not
        leaving."""
        records = [self.replicas.get(slot.name) for slot in self.layout.pool_slots(pool)]
        return [record for record in records if record is not None and not record.leaving]


class RunDir:
    """The folder holding one local stack's state, logs, configs and sockets."""

    def __init__(self, path: Path) -> None:
        self.path = path.resolve()

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    @property
    def gateway_socket(self) -> Path:
        return self.path / "haproxy.sock"

    def load(self) -> StackState | None:
        path = self.path / STATE_FILE
        try:
            raw = json.loads(path.read_text())
            raw["replicas"] = {
                name: ReplicaRecord(**record) for name, record in raw.get("replicas", {}).items()
            }
            return StackState(**raw)
        except FileNotFoundError:
            return None
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise StateUnreadableError(
                f"{path} is not a state file this spillover can read ({error}); stop the "
                "processes it lists by hand, then delete it"
            ) from error

    def require(self) -> StackState:
        """The running stack's state; a StackError saying how to start one if there is none."""
        state = self.load()
        if state is None:
            raise StackError(
                f"no local stack in {self.path}; run `spillover local --run-dir {self.path} up`"
            )
        return state

    def save(self, state: StackState) -> None:
        """Replace the state file atomically, so a kill mid-write leaves the old one."""
        self.path.mkdir(parents=True, exist_ok=True)
        temporary = self.path / (STATE_FILE + ".tmp")
        temporary.write_text(json.dumps(asdict(state), indent=2, sort_keys=True))
        os.replace(temporary, self.path / STATE_FILE)

    def clear(self) -> None:
        (self.path / STATE_FILE).unlink(missing_ok=True)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Serialize commands that change the stack (two `scale`s must not race)."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / LOCK_FILE, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
