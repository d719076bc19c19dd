"""The reactive baseline: pools scaled the way a Kubernetes HorizontalPodAutoscaler does.

A stand-in for the policy in the same loop (same `decide` signature, same pools), not a
copy of it: no forecast, no cost order. Every 15 s (HPA's `--horizontal-pod-autoscaler-
sync-period`) each burst pool gets desired = ceil(ready x utilization / target), with
HPA's 10% tolerance, its default scale-up limit (double, or +4 pods, per sync) and its
300 s scale-down stabilization (the largest recommendation of the last 300 s).
Utilization is what a saturated pod shows: at most 100%, however much is queued or
failing. HPA keeps at least one replica. Private pools run all they own. Traffic is
shared by ready capacity, private first (the same rule the gateway would follow).
"""

from __future__ import annotations

import math

from spillover.config import SpilloverConfig
from spillover.controller.decisions import Decision, Mode, ScalePool, SetMode, SetWeights
from spillover.controller.policy import PolicyState, PoolPlan, pool_status, routing, sizing
from spillover.controller.snapshot import Snapshot

SYNC_SECONDS = 15.0
TOLERANCE = 0.1
SCALE_DOWN_STABILIZATION_SECONDS = 300.0
SCALE_UP_PODS = 4


class ReactiveAutoscaler:
    def __init__(self, config: SpilloverConfig) -> None:
        self.config = config
        self.order = sizing.preference_order(config)
        self.target = config.policy.target_utilization
        self.last_sync: float | None = None
        self.recommendations: dict[str, list[tuple[float, int]]] = {}

    def decide(
        self, snapshot: Snapshot, state: PolicyState, now: float
    ) -> tuple[list[Decision], PolicyState]:
        sync = self.last_sync is None or now - self.last_sync >= SYNC_SECONDS - 1e-9
        if sync:
            self.last_sync = now
        desired = {}
        for pool in self.order:
            current = state.desired(pool.name)
            if pool.role == "private":
                desired[pool.name] = pool.max_replicas
            elif current is None or (sync and snapshot.demand_rps is not None):
                desired[pool.name] = self._recommend(pool.name, snapshot, current, now)
            else:
                desired[pool.name] = current
        decisions: list[Decision] = [
            ScalePool(name, count, "reactive: HPA on utilization")
            for name, count in desired.items()
        ]
        weights = dict(state.weights)
        if snapshot.demand_rps is not None:
            ready = {pool.name: snapshot.pool(pool.name).ready for pool in self.order}
            capacity = {pool.name: pool.capacity_rps for pool in self.order}
            shares = routing.shares(self.order, ready, capacity, snapshot.demand_rps, self.target)
            if shares is not None:
                weights = shares
                decisions.append(SetWeights(tuple(shares.items()), "reactive: by ready capacity"))
        mode = (
            Mode.BURST
            if any(desired[p.name] > 1 for p in self.order if p.role == "burst")
            else Mode.NORMAL
        )
        if mode != state.mode:
            decisions.insert(0, SetMode(mode, "reactive"))
        pools = {
            name: PoolPlan(desired=count, status=pool_status(snapshot.pool(name), count))
            for name, count in desired.items()
        }
        return decisions, PolicyState(
            mode=mode, pools=pools, weights=weights, demand_rps=snapshot.demand_rps
        )

    def _recommend(self, name: str, snapshot: Snapshot, current: int | None, now: float) -> int:
        pool = self.config.pool(name)
        observed = snapshot.pool(name)
        spec = current if current is not None else max(pool.min_replicas, 1)
        ready = observed.ready
        capacity = pool.capacity_rps or 1.0
        if ready and observed.served_rps is not None:
            utilization = min(1.0, observed.served_rps / (ready * capacity))
            ratio = utilization / self.target
            raw = spec if abs(ratio - 1) <= TOLERANCE else math.ceil(ready * ratio)
        else:
            raw = spec
        if raw > spec:
            raw = min(raw, max(2 * spec, spec + SCALE_UP_PODS))
        floor = max(pool.min_replicas, 1)
        raw = min(max(raw, floor), pool.max_replicas)
        window = [
            (at, count)
            for at, count in self.recommendations.get(name, [])
            if now - at < SCALE_DOWN_STABILIZATION_SECONDS
        ]
        window.append((now, raw))
        self.recommendations[name] = window
        if raw >= spec:
            return raw
        return min(spec, max(count for _, count in window))
