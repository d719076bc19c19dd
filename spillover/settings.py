"""The runtime's tunables, grouped by what they tune, each with why it has its value.

`spillover.yaml` says what to run (pools, prices, SLO, policy); these say how the
machinery behaves while running it: timeouts, retries, polling, log thresholds. They
are not in the config file because no deployment should need to change them; a test
or an unusual site can pass its own (`dataclasses.replace(DEFAULTS.local, ...)`).
Every duration is in seconds and named `..._s`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ObserveSettings:
    """Reading Triton's metrics each tick."""

    scrape_timeout_s: float = 1.0
    """A replica whose /metrics takes longer is treated as unreadable this tick."""
    max_parallel_scrapes: int = 16
    """Threads scraping at once: a thousand-replica pool must not start a thousand."""


@dataclass(frozen=True)
class ActuationSettings:
    """Applying a tick's decisions."""

    attempts: int = 3
    """Tries within one tick for a temporary error; the next tick tries again anyway."""
    first_delay_s: float = 0.2
    """Before the second try; doubled after each failed one."""
    max_delay_s: float = 2.0
    """Retries stay within about one tick: the loop must not stall on one actuator."""


@dataclass(frozen=True)
class KubernetesSettings:
    """The Kubernetes pool driver's API calls."""

    request_timeout_s: float = 3.0
    """Per API request, connecting included: a hung API server stalls a tick by at most
    this much per call (two calls per scale or replicas()), and the call is not retried
    within it (the actuators and the next tick retry)."""
    retry_delay_s: float = 1.0
    """Delay of a temporary error when the API server gives no Retry-After."""


@dataclass(frozen=True)
class LocalSettings:
    """Starting and stopping the local stack's processes."""

    ready_timeout_s: float = 120.0
    """How long `local up` and `local scale` wait for a new Triton to answer ready:
    model load on a busy 2-core machine takes seconds, minutes mean it is stuck."""
    drain_timeout_s: float = 10.0
    """How long a replica leaving its pool may finish the requests it has in flight."""
    stop_grace_s: float = 8.0
    """How long a process group gets between SIGTERM and SIGKILL: Triton unloads its
    models and stops its backend stubs, ~5 s when clients keep connections open."""
    gateway_start_timeout_s: float = 10.0
    """HAProxy answers on its socket within milliseconds; seconds mean it is stuck."""
    gateway_poll_s: float = 0.05
    """How often waits on the gateway ask again: stats are cheap, detection sub-second."""


@dataclass(frozen=True)
class LedgerSettings:
    """The SQLite spend ledger."""

    busy_timeout_s: float = 5.0
    """How long a writer waits for another writer's transaction; readers never wait in
    WAL mode."""


@dataclass(frozen=True)
class LogSettings:
    """What is worth a log line."""

    weight_change_percent: int = 5
    """Shares move a little with every demand sample; a line per percentage point is
    noise, so a route change is logged once some pool's share moved this much."""


@dataclass(frozen=True)
class Settings:
    observe: ObserveSettings = field(default_factory=ObserveSettings)
    actuation: ActuationSettings = field(default_factory=ActuationSettings)
    kubernetes: KubernetesSettings = field(default_factory=KubernetesSettings)
    local: LocalSettings = field(default_factory=LocalSettings)
    ledger: LedgerSettings = field(default_factory=LedgerSettings)
    log: LogSettings = field(default_factory=LogSettings)


DEFAULTS = Settings()
