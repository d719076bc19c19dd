"""Once per tick: observe → decide → act → record. The only place that reads the clock.

Level-triggered: every tick applies the full desired state, so a decision an
actuator missed is made on the next tick, and a restarted controller (which
reloads the policy state it stored) carries on exactly where it stopped. Nothing
that fails inside a tick stops the loop: it is logged with its traceback and the
next tick goes on.

With leader election (`controller.cluster`), only the leader decides, acts and
writes the ledger; a follower observes and exports metrics. Leadership is asked
before acting and again before recording, so a leader that lost its Lease stops
within the renew deadline even mid-tick. A new leader first reloads the stored
policy state; the ledger's watermarks are in the shared file, so its first record
charges the gap since the last leader's last tick, once. Paused (the status
resource's annotation), the leader keeps observing, deciding, recording and
reporting, and applies nothing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from spillover.config import SpilloverConfig
from spillover.controller.actuators import ActuationFailure, Actuators
from spillover.controller.decisions import Alert, Decision, ScalePool, SetMode, SetWeights
from spillover.controller.exporter import Exporter
from spillover.controller.ledger import Ledger, PoolUsage, category_rates
from spillover.controller.policy import Policy, PolicyState
from spillover.controller.pool_prices import PoolPrice
from spillover.controller.prices import PriceFeed, book_price
from spillover.controller.snapshot import Snapshot
from spillover.controller.status import status_view
from spillover.settings import DEFAULTS

logger = logging.getLogger("spillover.controller")


class Leadership(Protocol):
    def is_leader(self) -> bool: ...


class ClusterReporting(Protocol):
    """The status resource and Events (`spillover.controller.cluster.ClusterReporter`)."""

    def refresh(self) -> bool:
        """Read the status resource; True when it says paused."""
        ...

    def announce(self, reason: str, message: str, at: float, *, warn: bool = False) -> None: ...

    def report(
        self,
        now: float,
        view: Mapping[str, Any],
        said: Sequence[Decision],
        failures: Sequence[ActuationFailure],
        last_decision: Mapping[str, Any] | None,
    ) -> None: ...


class Observing(Protocol):
    def observe(self) -> Snapshot: ...

    def gateway_counters(self) -> Mapping[str, tuple[int | None, int | None]]:
        """Cumulative (served, failed) requests per pool, from the gateway."""
        ...


@dataclass
class TickReport:
    at: float
    decisions: list[Decision]
    logged: list[Decision]
    failures: list[ActuationFailure]
    duration_s: float
    snapshot: Snapshot | None = None


@dataclass
class ControllerLoop:
    config: SpilloverConfig
    observer: Observing
    actuators: Actuators
    ledger: Ledger
    exporter: Exporter | None = None
    prices: PriceFeed | None = None
    """Market prices for the pools that ask for them; None: every pool at its price book."""
    clock: Callable[[], float] = time.time
    state: PolicyState = field(default_factory=PolicyState)
    leadership: Leadership | None = None
    """None: acts alone (the local stack)."""
    cluster: ClusterReporting | None = None
    _last_said: dict[str, Decision] = field(default_factory=dict)
    _acting: bool = False
    _paused: bool = False

    def __post_init__(self) -> None:
        self.policy = Policy(self.config)
        # The config is fixed for the loop's life: its category rates are too.
        self._rates = {pool.name: category_rates(self.config, pool) for pool in self.config.pools}

    def restore(self) -> None:
        """Pick up the policy state the last run stored: same forecast, same cooldowns."""
        saved = self.ledger.load_controller_state()
        if saved is None:
            return
        try:
            self.state = PolicyState.from_json(saved.policy_state)
        except (ValueError, KeyError, TypeError):
            logger.exception("stored policy state is unreadable; starting afresh")
            return
        logger.info("resumed from the state stored at %s", _clock_time(saved.at))

    def tick(self) -> TickReport:
        started = time.perf_counter()
        now = self.clock()
        snapshot = self._observe(now)
        if not self._take_turn():
            return self._follow(now, snapshot, started)
        paused = self._check_pause(now)
        decisions, self.state = self.policy.decide(snapshot, self.state, now)
        if paused or not self._leading():
            failures: list[ActuationFailure] = []
        else:
            failures = self.actuators.apply(decisions)
        said = self._worth_saying(decisions)
        for decision in said:
            level = logging.WARNING if isinstance(decision, Alert) else logging.INFO
            held = "paused, not applied: " if paused else ""
            logger.log(level, "%s%s: %s", held, decision.describe(), decision.reason)
        if not self._leading():
            return self._follow(now, snapshot, started)
        prices = self._prices(now)
        view = self._record(now, snapshot, said, paused, prices)
        if self.cluster is not None and not paused:
            self.cluster.report(now, view, said, failures, _last_decision(now, said))
        elif self.cluster is not None:
            self.cluster.report(now, view, [], [], None)
        duration = time.perf_counter() - started
        if self.exporter is not None:
            self.exporter.update(snapshot, self.state, failures, duration, said, prices)
            self.exporter.set_standing(leader=True, paused=paused)
        return TickReport(now, decisions, said, failures, duration, snapshot)

    def run(self, stop: threading.Event, max_ticks: int | None = None) -> int:
        """Tick every `policy.tick_seconds` until `stop` is set; returns ticks run."""
        ticks = 0
        interval = self.config.policy.tick_seconds
        self._prime()
        stop.wait(min(interval, 1.0))
        while not stop.is_set() and (max_ticks is None or ticks < max_ticks):
            began = time.monotonic()
            try:
                self.tick()
            except Exception:  # the loop outlives any one bad tick
                logger.exception("tick failed; trying again next tick")
            ticks += 1
            stop.wait(max(interval - (time.monotonic() - began), 0.0))
        return ticks

    # --- steps ------------------------------------------------------------------

    def _leading(self) -> bool:
        return self.leadership is None or self.leadership.is_leader()

    def _take_turn(self) -> bool:
        """Whether this process acts this tick; a new leader first picks up the stored
        policy state (the previous leader's), so nothing is decided twice."""
        leading = self._leading()
        if leading and not self._acting and self.leadership is not None:
            logger.info("leading: resuming from the stored policy state and ledger")
            self.restore()
            self._last_said.clear()
        elif self._acting and not leading:
            logger.warning("not the leader any more: observing only, changing nothing")
        self._acting = leading
        return leading

    def _follow(self, now: float, snapshot: Snapshot, started: float) -> TickReport:
        """A follower's tick: what it saw goes to its /metrics, nothing else."""
        duration = time.perf_counter() - started
        if self.exporter is not None:
            self.exporter.update(snapshot, self.state, [], duration, [], self._prices(now))
            self.exporter.set_standing(leader=False, paused=self._paused)
        return TickReport(now, [], [], [], duration, snapshot)

    def _check_pause(self, now: float) -> bool:
        """Read the pause annotation; say so, once, when it changes."""
        if self.cluster is None:
            return False
        paused = self.cluster.refresh()
        if paused != self._paused:
            if paused:
                reason = (
                    'spillover.io/paused is "true": actuation stopped; observing, recording '
                    "and reporting go on"
                )
                logger.warning("paused: %s", reason)
            else:
                reason = "spillover.io/paused removed: acting again on the full desired state"
                logger.info("resumed: %s", reason)
            # Said again: paused, what is held back; resumed, what is applied now.
            self._last_said.clear()
            self.cluster.announce("Paused" if paused else "Resumed", reason, now, warn=paused)
            self._note(now, Alert("paused" if paused else "resumed", reason))
        self._paused = paused
        return paused

    def _note(self, now: float, decision: Decision) -> None:
        try:
            self.ledger.log_decisions(now, [decision])
        except Exception:
            logger.exception("could not write %s to the decision log", decision.describe())

    def _prime(self) -> None:
        """Take a first reading to measure rates against: without it the first tick
        would see no rates and take it for a metrics outage. Ask AWS for the market
        prices too, so the first tick is not charged at the price books."""
        try:
            self.observer.observe()
        except Exception:
            logger.exception("first observation failed")
        if self.prices is not None:
            try:
                self.prices.prime(self.clock())
            except Exception:
                logger.exception("first market prices failed; the price books until AWS answers")

    def _observe(self, now: float) -> Snapshot:
        try:
            snapshot = self.observer.observe()
        except Exception:
            logger.exception("observing failed: treating every metric as stale")
            return Snapshot(at=now, demand_rps=None, pools=())
        try:
            spent = self.ledger.month_to_date_usd(now, role="burst")
        except Exception:
            logger.exception("cannot read this month's burst spend; assuming none")
            spent = 0.0
        return replace(snapshot, burst_spend_this_month_usd=spent)

    def _worth_saying(self, decisions: Sequence[Decision]) -> list[Decision]:
        """Decisions that change something: a new size, a real shift in shares, a new
        mode or alert. The rest re-apply the same state and are not logged again."""
        said = []
        current_alerts = set()
        for decision in decisions:
            key = _key(decision)
            if isinstance(decision, Alert):
                current_alerts.add(key)
            previous = self._last_said.get(key)
            if _differs(previous, decision):
                said.append(decision)
                self._last_said[key] = decision
        for key in [k for k in self._last_said if k.startswith("alert:")]:
            if key not in current_alerts:
                del self._last_said[key]  # said again if it comes back
        return said

    def _prices(self, now: float) -> dict[str, PoolPrice]:
        """This tick's price of every pool; the price book when the feed fails outright."""
        if self.prices is not None:
            try:
                return self.prices.prices(now)
            except Exception:
                logger.exception("cannot price the pools; charging the price book")
        return {pool.name: book_price(pool) for pool in self.config.pools}

    def _record(
        self,
        now: float,
        snapshot: Snapshot,
        said: list[Decision],
        paused: bool,
        prices: Mapping[str, PoolPrice],
    ) -> dict[str, Any]:
        status = status_view(
            self.config, snapshot, self.state, self.config.policy.tick_seconds, prices
        )
        status["paused"] = paused
        journal = [_held(d) for d in said] if paused else said
        try:
            self.ledger.record(now, self._usages(snapshot, prices))
            self.ledger.log_decisions(now, journal)
            self.ledger.save_controller_state(now, self.state.to_json(), json.dumps(status))
        except Exception:
            logger.exception("could not write the ledger; spend since then is charged next tick")
        return status

    def _usages(self, snapshot: Snapshot, prices: Mapping[str, PoolPrice]) -> list[PoolUsage]:
        if not snapshot.pools:
            return []  # nothing observed: the next good tick charges the gap
        try:
            counters = self.observer.gateway_counters()
        except Exception:
            logger.exception("cannot read gateway counters")
            counters = {}
        usages = []
        for pool in self.config.pools:
            usage = PoolUsage.of(
                pool,
                snapshot.pool(pool.name).running,
                *counters.get(pool.name, (None, None)),
                busy_share=snapshot.pool(pool.name).busy_share,
                rates=self._rates[pool.name],
            )
            price = prices.get(pool.name)
            if price is not None:
                # From this tick on: the ledger charges the interval before it at the old price.
                usage = replace(
                    usage,
                    usd_per_replica_hour=price.usd_per_replica_hour,
                    price_source=price.source,
                )
            usages.append(usage)
        return usages


def _key(decision: Decision) -> str:
    if isinstance(decision, ScalePool):
        return f"scale:{decision.pool}"
    if isinstance(decision, SetWeights):
        return "weights"
    if isinstance(decision, SetMode):
        return "mode"
    return f"alert:{decision.topic}"


def _differs(previous: Decision | None, decision: Decision) -> bool:
    if previous is None:
        return True
    if isinstance(previous, SetWeights) and isinstance(decision, SetWeights):
        before, after = previous.shares, decision.shares
        moved = max(abs(after.get(pool, 0) - before.get(pool, 0)) for pool in after | before)
        serving_changed = {p for p, s in before.items() if s} != {p for p, s in after.items() if s}
        return serving_changed or moved >= DEFAULTS.log.weight_change_percent
    if isinstance(decision, Alert):
        return False  # said when it appeared; said again only after it cleared
    return previous.describe() != decision.describe()


def _held(decision: Decision) -> Decision:
    """A decision made while paused, as the decision log keeps it."""
    return replace(decision, reason=f"(paused, not applied) {decision.reason}")


def _last_decision(now: float, said: Sequence[Decision]) -> dict[str, Any] | None:
    changes: list[Decision] = [d for d in said if not isinstance(d, Alert)] or list(said)
    if not changes:
        return None
    decision = changes[-1]
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    return {"at": stamp, "decision": decision.describe(), "reason": decision.reason}


def _clock_time(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))
