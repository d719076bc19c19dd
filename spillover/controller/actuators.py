"""Apply decisions: pool sizes through pool drivers, traffic shares through the gateway.

Every actuator is idempotent (it converges to a target, so applying the same
decision each tick is how a missed change gets made), retries briefly on
temporary errors, and never lets a failure escape into the loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from spillover.controller.decisions import Decision, ScalePool, SetWeights
from spillover.drivers import haproxy
from spillover.drivers.pools import PoolDriver
from spillover.errors import PermanentError, TemporaryError
from spillover.settings import DEFAULTS, ActuationSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActuationFailure:
    decision: Decision
    error: str


class Actuators:
    """Applies a tick's decisions: traffic shares first (traffic leaves a pool before
    the pool shrinks), then pool sizes."""

    def __init__(
        self,
        drivers: Mapping[str, PoolDriver],
        gateway: GatewayActuator,
        settings: ActuationSettings = DEFAULTS.actuation,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.drivers = drivers
        self.gateway = gateway
        self.settings = settings
        self.sleep = sleep

    def apply(self, decisions: Sequence[Decision]) -> list[ActuationFailure]:
        failures = []
        ordered = sorted(decisions, key=lambda decision: not isinstance(decision, SetWeights))
        for decision in ordered:
            action = self._action(decision)
            if action is None:
                continue  # modes and alerts are recorded, not applied
            try:
                self._with_retry(action)
            except Exception as error:  # one failing actuator must not stop the others
                logger.exception("could not %s", decision.describe())
                failures.append(ActuationFailure(decision, str(error)))
        return failures

    def _action(self, decision: Decision) -> Callable[[], None] | None:
        if isinstance(decision, ScalePool):
            driver = self.drivers.get(decision.pool)
            if driver is None:
                raise PermanentError(f"no driver runs pool {decision.pool}")
            return lambda: driver.scale(decision.pool, decision.replicas)
        if isinstance(decision, SetWeights):
            return lambda: self.gateway.set_weights(decision.shares)
        return None

    def _with_retry(self, action: Callable[[], None]) -> None:
        delay = self.settings.first_delay_s
        for attempt in range(1, self.settings.attempts + 1):
            try:
                action()
                return
            except TemporaryError as error:
                if attempt == self.settings.attempts:
                    raise
                wait = min(max(delay, error.delay), self.settings.max_delay_s)
                logger.info("retrying in %.1f s: %s", wait, error)
                self.sleep(wait)
                delay *= 2


class GatewayActuator:
    """Traffic shares through HAProxy's runtime API."""

    def __init__(self, api: haproxy.RuntimeApi) -> None:
        self.api = api

    def set_weights(self, shares: Mapping[str, int]) -> None:
        """Its errors say whether to retry: an unreachable gateway is a TemporaryError,
        shares it cannot spread or a command it refuses a PermanentError."""
        self.api.set_pool_weights(shares)
