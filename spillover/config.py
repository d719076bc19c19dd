"""`spillover.yaml`: the one definition of pools, prices, SLO, policy and budget.

The controller loads it from a file; the controller's Helm chart takes the same
document under its `config` value and Pulumi passes it from stack config. All
three validate against this schema (its JSON Schema is `spillover config
schema`), so there is one place that says what a valid setting is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    AwareDatetime,
    Field,
    ValidationError,
    model_validator,
)

from spillover.config_base import StrictSettings
from spillover.config_cluster import ClusterOperations
from spillover.config_errors import describe_validation_error
from spillover.config_failover import FailoverReserve
from spillover.config_price import HOURS_PER_YEAR as HOURS_PER_YEAR
from spillover.config_price import AmortizedGpuCost as AmortizedGpuCost
from spillover.config_price import Price
from spillover.cost_categories import Costs
from spillover.drivers.registry import DRIVERS
from spillover.errors import SpilloverError

PoolName = Annotated[
    str,
    Field(
        pattern=r"^[a-z][a-z0-9_]{0,30}$",
        description="Lower-case letters, digits and _; also the prefix of the pool's replica "
        "names (private-0) and a metric label.",
    ),
]


def _known_driver(name: str) -> str:
    if name not in DRIVERS:
        raise ValueError(f"unknown driver {name!r}; one of: {', '.join(DRIVERS)}")
    return name


DriverName = Annotated[
    str,
    AfterValidator(_known_driver),
    Field(
        json_schema_extra={"enum": list(DRIVERS)},
        description=". ".join(f"{name}: {entry.summary}" for name, entry in DRIVERS.items()) + ".",
    ),
]


class ConfigError(SpilloverError):
    """The configuration is invalid; the message names every bad key and why."""


_Settings = StrictSettings


class MetricsPath(_Settings):
    """How the controller reaches each replica's Triton /metrics."""

    via: Literal["direct", "apiserver-proxy"] = Field(
        default="direct",
        description="direct: the pod IP (same cluster or routed network). apiserver-proxy: "
        "the pool's API server pod proxy, per pod; for a burst cluster at another site "
        "(needs pods/proxy get in the Triton namespace).",
    )


class KubernetesTarget(_Settings):
    """Where a `kubernetes` pool's Deployment lives."""

    namespace: str = Field(min_length=1, description="Namespace of the Triton Deployment.")
    deployment: str = Field(min_length=1, description="Name of the Triton Deployment.")
    kubeconfig: str | None = Field(
        default=None,
        description="Path of a kubeconfig for that cluster; none means the "
        "controller's in-cluster service account.",
    )
    context: str | None = Field(default=None, description="Context within the kubeconfig.")
    metrics: MetricsPath = Field(
        default_factory=MetricsPath, description="How each replica's /metrics is read."
    )

    @model_validator(mode="after")
    def _context_needs_kubeconfig(self) -> KubernetesTarget:
        if self.context is not None and self.kubeconfig is None:
            raise ValueError("context is set without a kubeconfig; in-cluster has no contexts")
        return self


class PoolConfig(_Settings):
    """A named set of identical Triton replicas with one price."""

    name: PoolName
    role: Literal["private", "burst"] = Field(
        description="private: owned GPUs, filled first. burst: cloud capacity used for the "
        "overflow and when private fails."
    )
    driver: DriverName = "local"
    min_replicas: int = Field(
        default=0, ge=0, description="Fewest replicas; 0 lets a burst pool stand by at no cost."
    )
    max_replicas: int = Field(ge=1, description="Most replicas (GPUs you own, or a cloud quota).")
    capacity_rps: float | None = Field(
        default=None,
        gt=0,
        description="Requests per second one replica serves at full "
        "utilization. When absent, measured from Triton's busy time.",
    )
    cold_start_seconds: float = Field(
        default=60.0, gt=0, description="From scale-up to ready: node, image pull, model load."
    )
    capacity_type: Literal["owned", "spot", "on-demand"] = Field(
        description="owned for private pools; spot or on-demand for burst pools."
    )
    price: Price
    kubernetes: KubernetesTarget | None = Field(
        default=None, description="Required when driver is kubernetes."
    )

    @model_validator(mode="after")
    def _consistent(self) -> PoolConfig:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas ({self.max_replicas}) is below min_replicas ({self.min_replicas})"
            )
        if (self.role == "private") != (self.capacity_type == "owned"):
            raise ValueError(
                f"capacity_type {self.capacity_type!r} does not fit role {self.role!r}: "
                "private pools are 'owned', burst pools 'spot' or 'on-demand'"
            )
        if self.price.market is not None and self.role != "burst":
            raise ValueError("price.market is for burst pools; owned GPUs have no market price")
        section = DRIVERS[self.driver].section
        if section is not None and getattr(self, section) is None:
            raise ValueError(f"driver {self.driver!r} needs a `{section}` section")
        return self


class Slo(_Settings):
    """What users must see; the policy keeps pools below these."""

    p99_latency_ms: float = Field(default=100.0, gt=0, description="End-to-end p99 latency.")
    queue_time_ms: float = Field(
        default=10.0,
        gt=0,
        description="Average time a request waits in Triton's queue; "
        "above it a pool counts as saturated whatever its measured capacity.",
    )


class KnownEvent(_Settings):
    """A peak on the calendar (11.11 at midnight): burst is brought up ahead of it."""

    name: str = Field(min_length=1, description="What it is, for the decision's reason.")
    start: AwareDatetime = Field(description="When it starts, with its time zone.")
    peak_multiple: float = Field(
        gt=1, description="Expected peak as a multiple of the demand just before it."
    )
    duration_seconds: float = Field(gt=0, description="How long it lasts.")


class Policy(_Settings):
    """How the controller sizes pools."""

    target_utilization: float = Field(
        default=0.7,
        gt=0,
        le=1,
        description="Share of a replica's capacity the policy plans to "
        "use; the rest absorbs noise while capacity starts.",
    )
    tick_seconds: float = Field(default=2.0, gt=0, description="Time between decisions.")
    scale_down_cooldown_seconds: float = Field(
        default=60.0,
        ge=0,
        description="A pool shrinks only to the largest size needed over "
        "this window, so noisy load cannot make it flap.",
    )
    forecast_horizon_seconds: float | None = Field(
        default=None,
        gt=0,
        description="How far ahead demand is forecast. Default: the "
        "longest burst cold start plus one tick, so capacity is ready before it is needed.",
    )
    demand_smoothing: float = Field(
        default=0.5, gt=0, le=1, description="EWMA weight of the newest demand sample."
    )
    stale_after_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Metrics older than this are stale; all of them stale "
        "puts the controller in safe mode.",
    )
    known_events: tuple[KnownEvent, ...] = Field(
        default=(),
        description="Peaks known ahead (a sale at midnight): capacity for each is started "
        "one burst cold start plus `prewarm_margin_seconds` before it begins, so it is "
        "ready at the start; after the start the forecast takes over.",
    )
    prewarm_margin_seconds: float = Field(
        default=120.0,
        ge=0,
        description="Extra lead before a known event, beyond the longest burst cold start.",
    )
    safe_mode: bool = Field(
        default=True,
        description="Hold replicas and weights while metrics are stale. false acts on "
        "whatever is still fresh (demand from the gateway) and may shrink a pool it cannot "
        "see: it exists for the metrics-outage drill's control run, not for production.",
    )


class Budget(_Settings):
    """What burst capacity may cost."""

    max_burst_usd_per_hour: float | None = Field(
        default=None, gt=0, description="Ceiling on the hourly price of all burst replicas."
    )
    monthly_cap_usd: float | None = Field(
        default=None, gt=0, description="Ceiling on burst spend this calendar month (UTC)."
    )
    action: Literal["refuse_growth", "hold", "shed"] = Field(
        default="refuse_growth",
        description="At the cap: refuse_growth adds burst replicas only "
        "while they fit; hold keeps burst at its current size; shed cuts burst to what fits "
        "and lets the excess queue or fail.",
    )


class Gateway(_Settings):
    """The HAProxy gateway whose weights the controller sets."""

    runtime_api: str | None = Field(
        default=None,
        description="HAProxy's runtime API: a unix socket path, or host:port when the gateway "
        "runs in another pod. None means the local stack's socket in its run directory.",
    )


class Controller(_Settings):
    """Where the controller keeps its records and serves its metrics."""

    database: str | None = Field(
        default=None,
        description="SQLite file for the spend ledger, decision log and policy "
        "state; none means controller.db in the local run directory.",
    )
    ledger_window_seconds: int = Field(
        default=60, ge=1, le=3600, description="Length of one spend-ledger window."
    )
    metrics_host: Literal["127.0.0.1", "0.0.0.0"] = Field(
        default="127.0.0.1",
        description="Address of the /metrics endpoint; 0.0.0.0 only "
        "inside a pod, where the Service decides who reaches it.",
    )
    metrics_port: int = Field(
        default=9464, ge=0, le=65535, description="Port of /metrics (0 picks a free one)."
    )
    reconcile_every_hours: float | None = Field(
        default=None,
        gt=0,
        description="Compare the ledger's burst spend with the AWS bill (Cost Explorer, "
        "ce:GetCostAndUsage, $0.01 a request) this often and export the drift per cost tag "
        "(spillover_spend_drift_ratio); none: never (`spillover spend reconcile` still can).",
    )
    cluster: ClusterOperations | None = Field(
        default=None,
        description="Leader election, status resource, Events and pause in the cluster the "
        "controller runs in; none (the local stack) means it acts alone and writes none.",
    )


class SpilloverConfig(_Settings):
    """The whole of `spillover.yaml`."""

    pools: list[PoolConfig] = Field(min_length=1, description="Pools, each named once.")
    slo: Slo = Field(default_factory=Slo)
    policy: Policy = Field(default_factory=Policy)
    budget: Budget = Field(default_factory=Budget)
    failover: FailoverReserve = Field(default_factory=FailoverReserve)
    gateway: Gateway = Field(default_factory=Gateway)
    controller: Controller = Field(default_factory=Controller)
    costs: Costs = Field(default_factory=Costs, description="Storage, network, labour, ops.")

    @model_validator(mode="after")
    def _pools_named_once(self) -> SpilloverConfig:
        names = [pool.name for pool in self.pools]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"pool names must be unique; repeated: {', '.join(repeated)}")
        self.costs.check_pools(names)
        if self.failover.reserve_share > 0 and all(pool.role != "burst" for pool in self.pools):
            raise ValueError("failover.reserve_share needs a burst pool to keep warm")
        return self

    def pool(self, name: str) -> PoolConfig:
        for pool in self.pools:
            if pool.name == name:
                return pool
        raise KeyError(name)

    @property
    def forecast_horizon_seconds(self) -> float:
        if self.policy.forecast_horizon_seconds is not None:
            return self.policy.forecast_horizon_seconds
        cold_starts = [pool.cold_start_seconds for pool in self.pools if pool.role == "burst"]
        return max(cold_starts, default=0.0) + self.policy.tick_seconds


def parse_config(document: Any, source: str = "config") -> SpilloverConfig:
    """Validate a parsed document; ConfigError lists every bad key with its reason."""
    try:
        return SpilloverConfig.model_validate(document)
    except ValidationError as error:
        raise ConfigError(f"{source} is invalid:\n{describe_validation_error(error)}") from None


def load_config(path: Path | str) -> SpilloverConfig:
    """Read and validate a spillover.yaml; nothing is applied from an invalid file."""
    path = Path(path)
    return parse_config(read_yaml(path), source=str(path))


def read_yaml(path: Path) -> Any:
    """The YAML document in a UTF-8 file; ConfigError says why a file cannot be one."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        # utf-8-sig: a byte-order mark, which some Windows editors write, is still UTF-8.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ConfigError(_not_utf8(path, data, error)) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None


def _not_utf8(path: Path, data: bytes, error: UnicodeDecodeError) -> str:
    offset = error.start
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return (
        f"{path} is not UTF-8 text: byte 0x{data[offset]:02x} at byte offset {offset} "
        f"(line {line}, column {column}) {error.reason}; save the file as UTF-8"
    )


def dump_config(config: SpilloverConfig) -> str:
    """YAML that `load_config` reads back to the same config."""
    return yaml.safe_dump(config.model_dump(mode="json", exclude_none=True), sort_keys=False)


def json_schema() -> str:
    """The JSON Schema of spillover.yaml: the controller chart's `config` value uses it."""
    return json.dumps(SpilloverConfig.model_json_schema(), indent=2, sort_keys=True) + "\n"
