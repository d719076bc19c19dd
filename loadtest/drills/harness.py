"""What every drill shares: a local stack running the drill's controller config, a
trace of load through its gateway with the samplers on, and actions at set times.

The stack is the real one (`spillover local up`: tritonserver processes, HAProxy and
the controller in their own process groups) and is always torn down.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from loadtest.drills.observed import Observed
from loadtest.drills.settings import StackSettings
from loadtest.drills.setup import DrillError
from loadtest.interrupts import stop_on_interrupt
from loadtest.results import Target
from loadtest.scheduler import run_load
from loadtest.timeline import (
    ControllerSample,
    ControllerSampler,
    GatewaySampler,
)
from loadtest.traces import Trace
from spillover.config import SpilloverConfig, dump_config
from spillover.controller.cli import database_path
from spillover.controller.ledger import CategoryRow, Ledger, WindowRow
from spillover.drivers.local.layout import LocalLayout, LocalPool
from spillover.drivers.local.state import ReplicaRecord
from spillover.drivers.processes import is_running, may_signal_group
from spillover.local.stack import LocalStack
from spillover.model.build import ensure_model, model_sizes

SETTLE_TIMEOUT_S = 120.0
GATEWAY_POLL_S = 0.05
"""Fine enough to time a mark-down to a tenth of a second."""
START_DELAY_S = 0.5
"""Between arming the samplers and the first request."""


@dataclass(frozen=True)
class Where:
    """Where a drill runs: its own run directory and ports, apart from `local up`'s."""

    run_dir: Path
    port_base: int
    model_repo: Path


class DrillStack:
    """The local stack for one drill, with the controller running its config."""

    def __init__(self, config: SpilloverConfig, where: Where) -> None:
        self.config = config
        self.where = where
        self.stack = LocalStack(where.run_dir)
        self.database = database_path(config, where.run_dir).path
        self.config_path = where.run_dir.parent / f"{where.run_dir.name}-spillover.yaml"
        self.n_users = self.n_items = 0

    def __enter__(self) -> DrillStack:
        model = ensure_model(self.where.model_repo)
        self.n_users, self.n_items = model_sizes(self.where.model_repo)
        self.where.run_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.database.parent.glob(f"{self.database.name}*"):
            stale.unlink()  # each drill's ledger and decision log start empty
        self.config_path.write_text(dump_config(self.config))
        self.stack.up(local_layout(self.config, self.where.port_base), model)
        try:
            self.stack.start_controller(self.config_path)
            self._wait_settled()
        except BaseException:
            self.stack.down()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stack.down()

    def target(self, settings: StackSettings) -> Target:
        return Target(self.stack.gateway_endpoints[settings.protocol], settings.protocol)

    def replicas(self, pool: str) -> list[ReplicaRecord]:
        return [record for record in self.stack.replica_records()[1] if record.pool == pool]

    def kill(self, records: Sequence[ReplicaRecord]) -> list[ReplicaRecord]:
        """SIGKILL replicas' process groups, as a machine that loses power would; returns
        those that were still running."""
        killed = []
        for record in records:
            if is_running(record.pid, record.started) and may_signal_group(
                record.pid, record.started
            ):
                try:
                    os.killpg(record.pid, signal.SIGKILL)
                    killed.append(record)
                except ProcessLookupError:
                    pass
        return killed

    def _wait_settled(self) -> None:
        """Until the controller has ticked with every pool at its floor, ready."""
        with ControllerSampler(self.database, interval_s=0.25) as controller:
            deadline = time.monotonic() + SETTLE_TIMEOUT_S
            while time.monotonic() < deadline:
                if controller.samples and _at_floor(controller.samples[-1], self.config):
                    return
                if not self._controller_alive():
                    log = self.stack.run_dir.logs / "controller.log"
                    raise DrillError(f"the controller exited; see {log}")
                time.sleep(0.25)
        raise DrillError(f"the stack did not settle within {SETTLE_TIMEOUT_S:.0f} s")

    def _controller_alive(self) -> bool:
        state = self.stack.run_dir.load()
        return bool(
            state
            and state.controller_pid
            and is_running(state.controller_pid, state.controller_started or 0)
        )


def local_layout(config: SpilloverConfig, port_base: int) -> LocalLayout:
    """The drill stack's local pools, each replica held to its pool's capacity_rps as
    `local up` holds it: a drill's overload must really overload private, or private
    alone carries any spike and no control can fail."""
    pools = tuple(
        LocalPool(pool.name, pool.min_replicas, pool.max_replicas, pool.capacity_rps)
        for pool in config.pools
        if pool.driver == "local"
    )
    return LocalLayout(pools, port_base=port_base)


def _at_floor(sample: ControllerSample, config: SpilloverConfig) -> bool:
    return all(
        sample.pools.get(pool.name, {}).get("ready") == pool.min_replicas for pool in config.pools
    )


@dataclass(frozen=True)
class Action:
    """Something a drill does at a set time after t = 0, named for the report."""

    at_s: float
    label: str
    do: Callable[[], None]


def run_with_actions(
    stack: DrillStack, trace: Trace, settings: StackSettings, actions: Sequence[Action] = ()
) -> Observed[None]:
    """Run the trace through the gateway, doing each action at its time on a thread of
    its own so the open-loop schedule never waits for it; then read what the controller
    decided and charged meanwhile from its ledger. Ctrl-C ends the load (and the
    actions not yet done) and the drill still reports; a second Ctrl-C aborts."""
    late = [action.label for action in actions if action.at_s >= trace.duration_s]
    if late:
        raise DrillError(f"actions after the load ends ({trace.duration_s:g} s): {late}")
    start_at = time.time() + START_DELAY_S
    done: dict[str, float] = {}
    failures: list[BaseException] = []
    stop = threading.Event()

    def act() -> None:
        for action in sorted(actions, key=lambda a: a.at_s):
            if stop.wait(max(0.0, start_at + action.at_s - time.time())):
                return
            try:
                action.do()
            except BaseException as error:  # reported after the load, never lost
                failures.append(error)
                return
            done[action.label] = time.time()

    interrupted = threading.Event()
    with (
        GatewaySampler(stack.stack.run_dir.gateway_socket, interval_s=GATEWAY_POLL_S) as gateway,
        ControllerSampler(stack.database) as controller,
        stop_on_interrupt(interrupted),
    ):
        actor = threading.Thread(target=act, name="drill-actions", daemon=True)
        actor.start()
        try:
            # The whole trace's plan, whatever its size: no cap cuts a drill short.
            run = run_load(
                stack.target(settings),
                trace,
                n_users=stack.n_users,
                n_items=stack.n_items,
                seed=settings.seed,
                request_timeout_s=settings.request_timeout_s,
                start_at=start_at,
                stop=interrupted,
            )
        finally:
            stop.set()
            actor.join(timeout=30)
    if failures:
        raise DrillError(f"a drill action failed: {failures[0]}") from failures[0]
    with Ledger(stack.database, window_seconds=None) as ledger:
        decisions = ledger.decisions_since(run.started_at)
        # Every spend a drill reports is over a part of the trace's span.
        span = (run.started_at, run.started_at + trace.duration_s)
        charges: list[WindowRow | CategoryRow] = [*ledger.windows(*span)]
        charges += ledger.category_windows(*span)
        window_s = float(ledger.window_seconds)
    return Observed(
        run,
        list(gateway.samples),
        list(controller.samples),
        decisions,
        charges,
        window_s,
        done,
        facts=None,
        actions=tuple(action.label for action in sorted(actions, key=lambda a: a.at_s)),
    )
