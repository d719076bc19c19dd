"""The acting controller's side of the cluster: pause, the status resource, Events.

Each tick the leader reads the Spillover resource (its pause annotation), turns the
decisions worth saying into Events on the pools' Deployments and on the resource,
and every `status_every_ticks` ticks (and at once when something was said) writes
the resource's status. Nothing here fails a tick: an API error is logged, and the
next tick tries again (the status is level-triggered; Events are best effort, as
in client-go).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from spillover.config import SpilloverConfig
from spillover.config_cluster import ClusterOperations
from spillover.controller.actuators import ActuationFailure
from spillover.controller.decisions import Alert, Decision, Mode, ScalePool, SetMode, SetWeights
from spillover.controller.events import NORMAL, WARNING, EventRecorder, Happening
from spillover.controller.status_resource import Extras, status_body
from spillover.drivers.kube_events import EventSink, ObjectRef
from spillover.drivers.kube_status import StatusResource, is_paused, reference_of
from spillover.drivers.kubernetes import ApiObjects
from spillover.errors import SpilloverError

logger = logging.getLogger(__name__)

SpendReader = Callable[[float], tuple[float, float]]
"""now -> (spend today, spend this month), in USD, all pools."""


class ClusterReporter:
    def __init__(
        self,
        config: SpilloverConfig,
        cluster: ClusterOperations,
        identity: str,
        spend: SpendReader,
        *,
        objects_for: Callable[[Any], ApiObjects] = ApiObjects,
    ) -> None:
        self.config = config
        self.cluster = cluster
        self.identity = identity
        self.spend = spend
        own = objects_for(cluster)
        self.resource = StatusResource(own, cluster.namespace, cluster.status_name)
        self._own_sink = EventSink(own, identity)
        self._pool_sinks = {
            pool.name: EventSink(objects_for(pool.kubernetes), identity)
            for pool in config.pools
            if pool.kubernetes is not None
        }
        self._pool_refs: dict[str, ObjectRef] = {}
        self.recorder = EventRecorder()
        self._object: dict[str, Any] | None = None
        self._paused = False
        self._ticks = 0

    # --- pause --------------------------------------------------------------------------

    def refresh(self) -> bool:
        """Read the resource; True when it says paused. If it cannot be read, the last
        known answer stands (a flaky API server must not unpause anything)."""
        try:
            self._object = self.resource.read()
        except SpilloverError as error:
            logger.warning(
                "cannot read %s: %s; paused stays %s", self._describe, error, self._paused
            )
            return self._paused
        self._paused = is_paused(self._object)
        return self._paused

    @property
    def _describe(self) -> str:
        return f"spillover {self.cluster.namespace}/{self.cluster.status_name}"

    # --- what happened --------------------------------------------------------------------

    def announce(self, reason: str, message: str, at: float, *, warn: bool = False) -> None:
        """An Event on the resource and every pool's Deployment: pause, resume."""
        kind = WARNING if warn else NORMAL
        for pool in self._pool_sinks:
            self._on_pool(pool, kind, reason, message, at)
        self._on_resource(kind, reason, message, at)

    def report(
        self,
        now: float,
        view: Mapping[str, Any],
        said: Sequence[Decision],
        failures: Sequence[ActuationFailure],
        last_decision: Mapping[str, Any] | None,
    ) -> None:
        for decision in said:
            self._events_of(decision, now)
        for failure in failures:
            self._failure_event(failure, now)
        self._ticks += 1
        if (
            said
            or failures
            or self._ticks % self.cluster.status_every_ticks
            == 1 % max(self.cluster.status_every_ticks, 1)
        ):
            self.write_status(now, view, failures, last_decision)

    def write_status(
        self,
        now: float,
        view: Mapping[str, Any],
        failures: Sequence[ActuationFailure],
        last_decision: Mapping[str, Any] | None,
    ) -> None:
        try:
            today, month = self.spend(now)
        except Exception:
            logger.exception("cannot read spend for the status resource")
            today = month = 0.0
        extras = Extras(
            today, month, self.identity, self._paused, last_decision,
            [f"{f.decision.describe()}: {f.error}" for f in failures],
        )  # fmt: skip
        previous = (self._object or {}).get("status")
        try:
            if self._object is None:
                self._object = self.resource.read()
            self._object = self.resource.write_status(status_body(view, extras, previous))
        except SpilloverError as error:
            logger.warning("cannot write the status of %s: %s", self._describe, error)

    def _events_of(self, decision: Decision, at: float) -> None:
        if isinstance(decision, ScalePool):
            message = f"Scaled {decision.pool} to {decision.replicas}: {decision.reason}"
            self._on_pool(decision.pool, NORMAL, "Scaled", message, at)
            self._on_resource(NORMAL, "Scaled", message, at)
        elif isinstance(decision, SetWeights):
            message = f"Routed {_shares(decision)}: {decision.reason}"
            for pool in decision.shares:
                self._on_pool(pool, NORMAL, "Routed", message, at)
            self._on_resource(NORMAL, "Routed", message, at)
        elif isinstance(decision, SetMode):
            kind = WARNING if decision.mode in (Mode.SAFE, Mode.FAILOVER) else NORMAL
            message = f"Mode {decision.mode.value}: {decision.reason}"
            self._on_resource(kind, "ModeChanged", message, at)
        elif isinstance(decision, Alert):
            reason = "".join(part.capitalize() for part in decision.topic.split("-"))
            self._on_resource(WARNING, reason, decision.reason, at)

    def _failure_event(self, failure: ActuationFailure, at: float) -> None:
        decision = failure.decision
        message = f"Could not {decision.describe()}: {failure.error}"
        if isinstance(decision, ScalePool):
            self._on_pool(decision.pool, WARNING, "FailedScale", message, at)
        self._on_resource(WARNING, "FailedActuation", message, at)

    def _on_resource(self, kind: str, reason: str, message: str, at: float) -> None:
        if self._object is None or not (self._object.get("metadata") or {}).get("uid"):
            return  # never read: nothing to attach the Event to yet
        happening = Happening(reference_of(self._object), kind, reason, message)
        self.recorder.record(happening, self._own_sink, at)

    def _on_pool(self, pool: str, kind: str, reason: str, message: str, at: float) -> None:
        sink = self._pool_sinks.get(pool)
        target = self.config.pool(pool).kubernetes if sink is not None else None
        if sink is None or target is None:
            return  # not a Deployment: local and simulated pools have nowhere to write
        ref = self._pool_refs.get(pool)
        if ref is None:
            try:
                ref = sink.deployment(target.namespace, target.deployment)
            except SpilloverError as error:
                logger.warning("cannot read deployment of pool %s for its event: %s", pool, error)
                return
            if ref is None:
                return
            self._pool_refs[pool] = ref
        self.recorder.record(Happening(ref, kind, reason, message), sink, at)


def _shares(decision: SetWeights) -> str:
    return ", ".join(f"{share}% to {pool}" for pool, share in decision.weights)
