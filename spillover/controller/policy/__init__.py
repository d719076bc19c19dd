"""The policy: a pure function of a snapshot, its own state and the clock.

`Policy(config).decide(snapshot, state, now)` returns the decisions for this tick
(every pool's size and the traffic shares, each with its reason, plus mode changes
and alerts) and the state for the next tick. It reads no clock, does no I/O and
knows no driver, so every scenario can be replayed tick by tick in a test.
"""

from __future__ import annotations

import math
from dataclasses import replace

from spillover.config import PoolConfig, SpilloverConfig
from spillover.controller.decisions import Alert, Decision, Mode, ScalePool, SetMode, SetWeights
from spillover.controller.policy import budget, calendar, capacity, forecast, routing, sizing
from spillover.controller.policy.state import DemandForecast, PolicyState, PoolPlan
from spillover.controller.snapshot import PoolObservation, Snapshot

__all__ = ["DemandForecast", "Policy", "PolicyState", "PoolPlan"]


class Policy:
    """Private first, burst for the overflow and for failover, within budget."""

    def __init__(self, config: SpilloverConfig) -> None:
        self.config = config
        self.order = sizing.preference_order(config)

    def decide(
        self, snapshot: Snapshot, state: PolicyState, now: float
    ) -> tuple[list[Decision], PolicyState]:
        stale = self._stale_sources(snapshot, state, now)
        # Without safe mode stale Triton metrics are ignored; unknown demand still holds,
        # since there is nothing to size pools by.
        if (stale and self.config.policy.safe_mode) or snapshot.demand_rps is None:
            return self._hold_in_safe_mode(snapshot, state, now, stale)
        demand = snapshot.demand_rps
        predicted = forecast.update(
            state.forecast, demand, now, self.config.policy.demand_smoothing
        )
        planned = forecast.planned_demand(predicted, demand, self.config.forecast_horizon_seconds)
        planned, event_note = calendar.prewarm(
            self.config, max(demand, predicted.level_rps), planned, now
        )
        learned = {
            pool.name: capacity.learn(
                _plan(state, pool).capacity_rps, snapshot.pool(pool.name).service_rate_rps
            )
            for pool in self.order
        }
        capacities, notes = self._planning_capacities(snapshot, learned)
        if demand > 0 and any(value is None for value in capacities.values()):
            return self._hold_unmeasured(snapshot, state, now, predicted, learned)
        # Without demand no pool needs a replica above its floor, whatever it serves.
        known = {name: value or math.inf for name, value in capacities.items()}
        targets = sizing.size_pools(
            self.config,
            [
                (
                    pool,
                    snapshot.pool(pool.name),
                    known[pool.name],
                    _plan(state, pool).recent_targets,
                )
                for pool in self.order
            ],
            planned,
            now,
        )
        desired = {target.pool: target.desired for target in targets}
        reasons = {target.pool: target.reason for target in targets}
        for name, note in notes.items():
            reasons[name] = f"{reasons[name]}; {note}"
        if event_note is not None:
            for pool in self.order:
                if pool.role == "burst":
                    reasons[pool.name] = f"{reasons[pool.name]}; {event_note}"
        decisions: list[Decision] = []
        budget_reason = self._apply_budget(snapshot, state, desired, reasons)
        unplaced = sum(target.unplaced_rps for target in targets)
        if unplaced > 0:
            decisions.append(
                Alert("capacity", f"{unplaced:.0f} rps of planned demand exceeds every pool's max")
            )
        if budget_reason and not state.budget_limited:
            decisions.append(Alert("budget", budget_reason))
        decisions += [ScalePool(name, count, reasons[name]) for name, count in desired.items()]
        weights = self._route(snapshot, state, known, demand, decisions)
        reserved = {target.pool: target.reserve_replicas for target in targets}
        mode, mode_reason = self._mode(snapshot, desired, reserved)
        if mode != state.mode:
            decisions.insert(0, SetMode(mode, mode_reason))
        pools = {
            target.pool: PoolPlan(
                desired=desired[target.pool],
                status=pool_status(snapshot.pool(target.pool), desired[target.pool]),
                recent_targets=target.recent_targets,
                capacity_rps=learned[target.pool],
            )
            for target in targets
        }
        return decisions, PolicyState(
            mode=mode,
            forecast=predicted,
            pools=pools,
            weights=weights,
            stale_since=None,
            budget_limited=budget_reason is not None,
            demand_rps=demand,
            planned_rps=planned,
        )

    # --- steps ------------------------------------------------------------------

    def _stale_sources(self, snapshot: Snapshot, state: PolicyState, now: float) -> str:
        """What the policy cannot see fresh, in words; empty when everything is fresh.

        Gateway stats go stale as a whole (demand unknown). Triton metrics go stale per
        pool: a pool whose ready replicas' /metrics have not answered for longer than
        `stale_after_seconds` while the gateway still routes to them. A pool with no
        ready replica has no metrics to miss (failed replicas are failover's business).
        """
        limit = self.config.policy.stale_after_seconds
        ages = {
            pool.name: age
            for pool in self.order
            if (age := snapshot.pool(pool.name).metrics_age_s) is not None and age > limit
        }
        sources = []
        if snapshot.demand_rps is None:
            since = state.stale_since if state.stale_since is not None else now
            sources.append(f"gateway stats stale for {now - since:.0f} s")
        if ages:
            sources.append(
                f"Triton metrics of {', '.join(ages)} unreachable for {max(ages.values()):.0f} s"
            )
        return "; ".join(sources)

    def _planning_capacities(
        self, snapshot: Snapshot, learned: dict[str, float | None]
    ) -> tuple[dict[str, float | None], dict[str, str]]:
        names = [pool.name for pool in self.order]
        capacities: dict[str, float | None] = {}
        notes = {}
        for pool in self.order:
            value, source = capacity.per_replica(pool, learned, names)
            if value is not None:
                value, saturated = capacity.saturation_limited(
                    value, snapshot.pool(pool.name), self.config.slo
                )
                if saturated:
                    notes[pool.name] = saturated
            if source.startswith("assumed"):
                notes[pool.name] = f"capacity {source}"
            capacities[pool.name] = value
        return capacities, notes

    def _apply_budget(
        self,
        snapshot: Snapshot,
        state: PolicyState,
        desired: dict[str, int],
        reasons: dict[str, str],
    ) -> str | None:
        burst = [pool for pool in self.order if pool.role == "burst"]
        previous = {pool.name: _current_size(state, snapshot, pool) for pool in burst}
        limited, reason = budget.limit_burst(
            self.config,
            burst,
            {pool.name: desired[pool.name] for pool in burst},
            previous,
            snapshot.burst_spend_this_month_usd,
        )
        if reason is None:
            return None
        for name, count in limited.items():
            if count != desired[name]:
                reasons[name] = f"{reasons[name]}; {reason}"
            desired[name] = count
        return reason

    def _route(
        self,
        snapshot: Snapshot,
        state: PolicyState,
        capacities: dict[str, float],
        demand: float,
        decisions: list[Decision],
    ) -> dict[str, int]:
        ready = {pool.name: snapshot.pool(pool.name).ready for pool in self.order}
        weights = routing.shares(
            self.order, ready, capacities, demand, self.config.policy.target_utilization
        )
        if weights is None:
            decisions.append(Alert("no-ready-replica", "no pool has a ready replica"))
            return dict(state.weights)
        serving = ", ".join(f"{name} {count} ready" for name, count in ready.items())
        decisions.append(
            SetWeights(
                tuple(weights.items()),
                f"{demand:.0f} rps to pools by ready capacity, cheapest first ({serving})",
            )
        )
        return weights

    def _mode(
        self, snapshot: Snapshot, desired: dict[str, int], reserved: dict[str, int]
    ) -> tuple[Mode, str]:
        down = [
            pool.name
            for pool in self.order
            if pool.role == "private"
            and desired[pool.name] > 0
            and not snapshot.pool(pool.name).ready
        ]
        if down:
            return Mode.FAILOVER, (
                f"{', '.join(down)} has no ready replica: its traffic goes to burst "
                "until it is back"
            )
        # The failover reserve is standing by, like min_replicas: not a burst.
        bursting = [
            p.name
            for p in self.order
            if p.role == "burst" and desired[p.name] > max(p.min_replicas, reserved[p.name])
        ]
        if bursting:
            return (
                Mode.BURST,
                f"demand exceeds private capacity: overflow goes to {', '.join(bursting)}",
            )
        return Mode.NORMAL, "private capacity covers demand; burst stands by"

    def _hold_in_safe_mode(
        self, snapshot: Snapshot, state: PolicyState, now: float, stale: str
    ) -> tuple[list[Decision], PolicyState]:
        """Metrics are stale (`stale` says which): change nothing, and above all shrink
        nothing. The next tick with everything fresh decides normally again."""
        since = state.stale_since if state.stale_since is not None else now
        reason = f"{stale}: holding replicas and weights, no scale-down until they return"
        decisions: list[Decision] = []
        if state.mode != Mode.SAFE:
            decisions += [SetMode(Mode.SAFE, reason), Alert("metrics-stale", reason)]
        held = self._held_pools(snapshot, state)
        decisions += [ScalePool(name, plan.desired, reason) for name, plan in held.items()]
        return decisions, replace(
            state, mode=Mode.SAFE, stale_since=since, pools=held, demand_rps=snapshot.demand_rps
        )

    def _hold_unmeasured(
        self,
        snapshot: Snapshot,
        state: PolicyState,
        now: float,
        predicted: DemandForecast,
        learned: dict[str, float | None],
    ) -> tuple[list[Decision], PolicyState]:
        """Traffic flows but no pool's capacity is known yet: wait one measurement."""
        reason = "no replica capacity measured yet: holding sizes until Triton reports busy time"
        held = {
            name: replace(plan, capacity_rps=learned[name])
            for name, plan in self._held_pools(snapshot, state).items()
        }
        decisions: list[Decision] = [
            ScalePool(name, plan.desired, reason) for name, plan in held.items()
        ]
        return decisions, replace(
            state, forecast=predicted, pools=held, demand_rps=snapshot.demand_rps, stale_since=None
        )

    def _held_pools(self, snapshot: Snapshot, state: PolicyState) -> dict[str, PoolPlan]:
        held = {}
        for pool in self.order:
            size = _current_size(state, snapshot, pool)
            plan = _plan(state, pool)
            held[pool.name] = replace(
                plan, desired=size, status=pool_status(snapshot.pool(pool.name), size)
            )
        return held


def pool_status(observation: PoolObservation, desired: int) -> str:
    """serving / scaling / standby / degraded / down, as `spillover status` shows it.

    A pool sized to 0 with nothing running stands by: that is a burst pool waiting
    at no cost, not an outage.
    """
    ready, starting = observation.ready, observation.starting
    if desired == 0 and ready == 0 and starting == 0:
        return "standby"
    if ready == 0:
        return "starting" if starting else "down"
    if ready < desired:
        return "scaling" if starting else "degraded"
    return "serving"


def _plan(state: PolicyState, pool: PoolConfig) -> PoolPlan:
    return state.pools.get(pool.name) or PoolPlan(desired=pool.min_replicas, status="standby")


def _current_size(state: PolicyState, snapshot: Snapshot, pool: PoolConfig) -> int:
    """What the pool is asked to run now: last decision, or (first tick) what runs.

    A draining replica is not counted: it is on its way out, and its driver starts
    a replacement for it within the size asked for.
    """
    desired = state.desired(pool.name)
    if desired is not None:
        return desired
    observed = snapshot.pool(pool.name)
    running = observed.ready + observed.starting
    return min(max(running, pool.min_replicas), pool.max_replicas)
