"""What the simulated world does, beside spillover.yaml: cold starts, spot, faults.

`sim.yaml` (optional; every key has a default) is validated like spillover.yaml: an
unknown or bad key is named and nothing runs.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError

from spillover.config import ConfigError, PoolConfig, describe_validation_error, read_yaml
from spillover.config_base import StrictSettings

SPOT_NOTICE_SECONDS = 120.0
"""EC2 gives a spot instance two minutes' notice before it takes it back (EC2 User
Guide, "Spot Instance interruption notices")."""


class ColdStartStep(StrictSettings):
    """One stage of a replica's start, log-normally distributed around its median."""

    name: str
    median_s: float = Field(gt=0)
    sigma: float = Field(default=0.25, ge=0, description="Log-normal shape (0: fixed).")


# An EKS GPU node from zero, in the three stages the cloud providers describe (GKE,
# "Reduce Pod startup latency": node provisioning, image pull, application start).
# Node provisioning: Karpenter launching a g5/g6 instance and the node joining with
# the NVIDIA device plugin ready, typically one to two minutes. Image pull: the Triton
# image is several GB; AWS's EKS guide "Run AI/ML inference workloads" says SOCI
# parallel pull brings image pulls "from minutes to seconds" and pods serving "in
# under two minutes" -- without it (the default here) the pull takes minutes. Model
# load: the recommender's ONNX plan into GPU memory, seconds to tens of seconds.
EKS_GPU_FROM_ZERO = (
    ColdStartStep(name="node provisioning", median_s=75, sigma=0.25),
    ColdStartStep(name="image pull", median_s=120, sigma=0.35),
    ColdStartStep(name="model load", median_s=20, sigma=0.3),
)
# The private site keeps its nodes and images warm: a replica is a model load away.
PRIVATE_WARM_NODE = (ColdStartStep(name="model load", median_s=15, sigma=0.2),)


class PricePoint(StrictSettings):
    at_s: float = Field(ge=0, description="Seconds from the start of the trace.")
    usd_per_replica_hour: float = Field(gt=0)


class Window(StrictSettings):
    at_s: float = Field(ge=0, description="Seconds from the start of the trace.")
    duration_s: float = Field(gt=0)

    def covers(self, second: float) -> bool:
        return self.at_s <= second < self.at_s + self.duration_s


class PoolWorld(StrictSettings):
    """How one pool behaves in the simulation."""

    cold_start: tuple[ColdStartStep, ...] | None = Field(
        default=None, description="Default: EKS GPU node from zero (burst), warm node (private)."
    )
    capacity_rps: float | None = Field(
        default=None,
        gt=0,
        description="Requests per second one replica really serves. Default: the pool's "
        "`capacity_rps` in spillover.yaml (needed here when that is left to be measured).",
    )
    base_latency_ms: float | None = Field(
        default=None,
        ge=0,
        description="Network and gateway time of a request, before queueing and service. "
        "Default 5 ms private, 25 ms burst (another site).",
    )
    interruptions_per_replica_hour: float = Field(
        default=0.05,
        ge=0,
        description="Spot pools: hazard of an interruption per replica-hour "
        "(AWS's Spot Instance Advisor bands g5: <5% a month to 5-10%; 0.05/h is a bad week).",
    )
    notice_seconds: float = Field(default=SPOT_NOTICE_SECONDS, gt=0)
    unavailable: tuple[Window, ...] = Field(
        default=(), description="Spot pools: windows with no spot capacity to start on."
    )
    prices: tuple[PricePoint, ...] | None = Field(
        default=None,
        description="A price series; each point holds until the next. Default: spot pools "
        "follow a built-in hourly walk within 0.7-1.3x their configured price; [] keeps "
        "the configured price.",
    )


class Fault(StrictSettings):
    kind: Literal["site-loss", "metrics-outage", "burst-api-outage"]
    at_s: float = Field(ge=0, description="Seconds from the start of the trace.")
    duration_s: float = Field(gt=0)
    pool: str | None = Field(
        default=None, description="site-loss: the pool lost (default every private pool)."
    )


class SimSettings(StrictSettings):
    seed: int = 11
    pools: dict[str, PoolWorld] = Field(default_factory=dict)
    faults: tuple[Fault, ...] = ()

    def world(self, pool: PoolConfig) -> PoolWorld:
        return self.pools.get(pool.name, PoolWorld())


def cold_start_steps(pool: PoolConfig, world: PoolWorld) -> tuple[ColdStartStep, ...]:
    if world.cold_start is not None:
        return world.cold_start
    return PRIVATE_WARM_NODE if pool.role == "private" else EKS_GPU_FROM_ZERO


def cold_start_sampler(steps: tuple[ColdStartStep, ...], rng: random.Random):
    """A function drawing one cold start: the sum of its steps' log-normal draws."""
    parameters = [(math.log(step.median_s), step.sigma) for step in steps]

    def draw() -> float:
        return sum(
            rng.lognormvariate(mu, sigma) if sigma else math.exp(mu) for mu, sigma in parameters
        )

    return draw


def capacity_rps(pool: PoolConfig, world: PoolWorld) -> float:
    value = world.capacity_rps if world.capacity_rps is not None else pool.capacity_rps
    if value is None:
        raise ConfigError(
            f"pools.{pool.name}.capacity_rps: the simulator needs a replica's capacity; "
            "set it in spillover.yaml or in sim.yaml"
        )
    return value


def base_latency_ms(pool: PoolConfig, world: PoolWorld) -> float:
    if world.base_latency_ms is not None:
        return world.base_latency_ms
    return 5.0 if pool.role == "private" else 25.0


def parse_settings(document: object, source: str = "sim settings") -> SimSettings:
    try:
        return SimSettings.model_validate(document or {})
    except ValidationError as error:
        raise ConfigError(f"{source} is invalid:\n{describe_validation_error(error)}") from None


def load_settings(path: Path | None) -> SimSettings:
    if path is None:
        return SimSettings()
    return parse_settings(read_yaml(path), str(path))
