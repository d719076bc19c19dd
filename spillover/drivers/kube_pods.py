"""A pod as the Kubernetes API lists it, read as a replica: pure functions of the client's
V1 objects (attribute access only), so they need no import of the client itself.
"""

from __future__ import annotations

from typing import Any

from spillover.drivers.pools import ReplicaTarget

DEFAULT_METRICS_PORT = 8002
"""Triton's metrics port, used when no container port is named ``metrics``."""

_LIVE_PHASES = ("Pending", "Running")


def label_selector(selector: Any) -> str:
    """A V1LabelSelector as the query string the API takes (``a=b,c in (d,e)``)."""
    terms = [f"{key}={value}" for key, value in sorted((selector.match_labels or {}).items())]
    for expression in selector.match_expressions or []:
        key, values = expression.key, ",".join(expression.values or [])
        terms.append(
            {
                "In": f"{key} in ({values})",
                "NotIn": f"{key} notin ({values})",
                "Exists": key,
                "DoesNotExist": f"!{key}",
            }[expression.operator]
        )
    return ",".join(terms)


def replica_of(pool: str, pod: Any) -> ReplicaTarget:
    """A V1Pod as a replica: failed and finished pods are not alive; a terminating one
    (deletion timestamp set: scaled down, evicted, its spot node reclaimed) is draining
    and alive until it is gone, since its node is billed until then."""
    alive = pod.status.phase in _LIVE_PHASES
    return ReplicaTarget(
        name=pod.metadata.name,
        pool=pool,
        alive=alive,
        ready=alive and _condition_true(pod, "Ready"),
        started_at=pod.metadata.creation_timestamp.timestamp(),
        metrics_url=_metrics_url(pod),
        draining=pod.metadata.deletion_timestamp is not None,
    )


def _condition_true(pod: Any, kind: str) -> bool:
    return any(
        condition.type == kind and condition.status == "True"
        for condition in pod.status.conditions or []
    )


def _metrics_url(pod: Any) -> str:
    address = pod.status.pod_ip
    if not address:
        return ""
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{metrics_port(pod)}/metrics"


def metrics_port(pod: Any) -> int:
    for container in pod.spec.containers:
        for port in container.ports or []:
            if port.name == "metrics":
                return int(port.container_port)
    return DEFAULT_METRICS_PORT
