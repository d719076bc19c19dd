"""The Spillover resource's status: what `kubectl get/describe spillovers` shows.

Built from the same view `spillover status` stores each tick, plus the spend, the
leader, pause and the conditions. Numbers are rounded where people read them
(kubectl prints a float as is). Conditions follow the Kubernetes convention:
type, status "True"/"False"/"Unknown", a CamelCase reason, a message, and a
lastTransitionTime that moves only when the status does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from spillover.drivers.kube_events import event_time

CONDITION_TYPES = ("Ready", "Degraded", "BudgetLimited", "SafeMode")


@dataclass(frozen=True)
class Extras:
    """What the stored view lacks: money, who leads, pause, the last decision, failures."""

    spend_today_usd: float
    spend_month_usd: float
    leader: str
    paused: bool
    last_decision: Mapping[str, Any] | None
    failures: Sequence[str]


def status_body(
    view: Mapping[str, Any], extras: Extras, previous: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The status to write; `previous` is the resource's current status (for
    lastTransitionTime)."""
    pools = [_pool(pool) for pool in view["pools"]]
    body: dict[str, Any] = {
        "observedAt": event_time(view["at"]),
        "leader": extras.leader,
        "paused": extras.paused,
        "mode": view["mode"],
        "demandRps": _round(view["demand_rps"], 0),
        "plannedRps": _round(view["planned_rps"], 0),
        "private": _ready_of(view["pools"], "private"),
        "burst": _ready_of(view["pools"], "burst"),
        "usdPerHour": round(sum(p["usd_per_hour"] for p in view["pools"]), 2),
        "spendTodayUsd": round(extras.spend_today_usd, 2),
        "spendMonthUsd": round(extras.spend_month_usd, 2),
        "budgetLimited": bool(view["budget_limited"]),
        "pools": pools,
        "conditions": conditions(view, extras, (previous or {}).get("conditions") or []),
    }
    if extras.last_decision is not None:
        body["lastDecision"] = dict(extras.last_decision)
    return body


def conditions(
    view: Mapping[str, Any], extras: Extras, previous: Sequence[Mapping[str, Any]]
) -> list[dict[str, str]]:
    mode = view["mode"]
    if extras.paused:
        ready = ("False", "Paused", 'spillover.io/paused is "true": observing, not acting')
    elif mode == "safe":
        ready = ("False", "MetricsStale", "metrics are stale: replicas and weights held")
    else:
        ready = ("True", "Acting", f"acting in mode {mode}")
    if extras.failures:
        degraded = ("True", "ActuationFailed", "; ".join(extras.failures)[:1000])
    elif mode == "failover":
        degraded = ("True", "Failover", "a private pool has no ready replica; burst serves")
    else:
        degraded = ("False", "AsExpected", "every decision was applied")
    budget = (
        ("True", "AtCap", "the budget keeps burst from growing")
        if view["budget_limited"]
        else ("False", "WithinBudget", "burst spend is within its caps")
    )
    safe = (
        ("True", "MetricsStale", "every metric is stale: nothing scales down")
        if mode == "safe"
        else ("False", "MetricsFresh", "metrics are fresh")
    )
    before = {str(c.get("type")): c for c in previous}
    now = event_time(view["at"])
    made = []
    for kind, (status, reason, message) in zip(
        CONDITION_TYPES, (ready, degraded, budget, safe), strict=True
    ):
        old = before.get(kind)
        since = old.get("lastTransitionTime") if old and old.get("status") == status else None
        made.append(
            {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastTransitionTime": str(since or now),
            }
        )
    return made


def _pool(pool: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": pool["pool"],
        "role": pool["role"],
        "capacityType": pool["capacity_type"],
        "status": pool["status"],
        "ready": pool["ready"],
        "desired": pool["desired"],
        "weight": pool["weight"],
        "servedRps": _round(pool["served_rps"], 1),
        "queueTimeMs": _round(pool["queue_time_ms"], 1),
        "usdPerHour": round(pool["usd_per_hour"], 2),
    }


def _ready_of(pools: Sequence[Mapping[str, Any]], role: str) -> str:
    """ "ready/desired" over a role's pools: the PRIVATE and BURST columns."""
    mine = [pool for pool in pools if pool["role"] == role]
    ready = sum(pool["ready"] for pool in mine)
    desired = sum(pool["desired"] or 0 for pool in mine)
    return f"{ready}/{desired}"


def _round(value: float | None, digits: int) -> float | int | None:
    if value is None:
        return None
    return int(round(value)) if digits == 0 else round(value, digits)
