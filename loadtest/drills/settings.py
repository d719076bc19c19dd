"""The drill config (loadtest/drills.yaml): what each drill runs and its thresholds.

One pydantic model per drill, strict like spillover.yaml: an unknown key or a bad
value is named with its reason and nothing runs. Each drill's `control` says how its
control run turns off the mechanism the drill tests: overrides merged over the
treatment's, and for some drills a switch of the drill's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, ValidationError

from spillover.config import (
    ConfigError,
    SpilloverConfig,
    describe_validation_error,
    parse_config,
    read_yaml,
)
from spillover.config_cli import LOCAL_DEFAULT

DEFAULT_DRILLS = Path(__file__).parents[1] / "drills.yaml"
Share = PositiveFloat
"""A rate as a share of the private pool's capacity (1.0 = all of it)."""


DRILL_STACK = {"controller": {"metrics_port": 0, "ledger_window_seconds": 5}}
"""A drill's controller serves /metrics on any free port (a `local up` controller may
hold the configured one; the drill reads the ledger, not /metrics), and charges 5 s
ledger windows, so the spend of a spike or an outage is not blurred into a minute."""


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StackSettings(_Settings):
    config: Path | None = None
    """The controller config the local stack runs; None: the packaged local default."""
    protocol: Literal["http", "grpc"] = "grpc"
    request_timeout_s: PositiveFloat = 10.0
    seed: int = 0


class ControlSection(_Settings):
    """A drill's control run: the same drill, on the same shape, with the mechanism it
    tests turned off. It must fail the checks that mechanism guards."""

    overrides: dict[str, Any] = Field(default_factory=dict)
    """Merged into the controller config after the treatment's own overrides."""

    def drill_changes(self) -> dict[str, Any]:
        """The drill's own switches this control sets (all but the overrides)."""
        return self.model_dump(exclude={"overrides"})


class DrillSection(_Settings):
    """What every drill's section has: overrides of the controller config, and its
    control run (None: the drill has none configured)."""

    overrides: dict[str, Any] = Field(default_factory=dict)
    """Merged into the controller config; pools are addressed by name."""
    control: ControlSection | None = None


class FailoverThresholds(_Settings):
    failed_requests: int = Field(default=0, ge=0)
    recovery_s: PositiveFloat = 2.0
    detection_s: PositiveFloat = 2.0
    failback_s: PositiveFloat = 20.0
    standby_s: PositiveFloat = 40.0


class FailoverDrill(DrillSection):
    load_share: Share = 0.35
    warmup_s: PositiveFloat = 30.0
    outage_s: float = Field(default=15.0, ge=0)
    after_s: PositiveFloat = 45.0
    thresholds: FailoverThresholds = FailoverThresholds()


class BurstThresholds(_Settings):
    within_slo_share: float = Field(default=0.99, gt=0, le=1)
    decision_ticks: PositiveFloat = 1.0
    failed_requests: int = Field(default=0, ge=0)


class BurstDrill(DrillSection):
    base_share: Share = 0.2
    peak_share: Share = 1.6
    warmup_s: PositiveFloat = 10.0
    rise_s: PositiveFloat = 20.0
    hold_s: float = Field(default=10.0, ge=0)
    decay_s: PositiveFloat = 8.0
    duration_s: PositiveFloat = 50.0
    thresholds: BurstThresholds = BurstThresholds()


class SpotInterruptionThresholds(_Settings):
    failed_requests: int = Field(default=0, ge=0)
    drain_s: PositiveFloat = 1.0
    replacement_margin_s: float = 0.0


class SpotInterruptionControl(ControlSection):
    drain_on_notice: bool = False


class SpotInterruptionDrill(DrillSection):
    drain_on_notice: bool = True
    """The stack acts on the notice: the replica leaves rotation at once and a
    replacement starts (the local stack's part; in a cluster, a node termination
    handler's). False: nobody heeds it, and the replica serves until it is reclaimed."""
    control: SpotInterruptionControl | None = None
    load_share: Share = 0.8
    warmup_s: PositiveFloat = 12.0
    notice_s: PositiveFloat = 12.0
    after_s: PositiveFloat = 10.0
    thresholds: SpotInterruptionThresholds = SpotInterruptionThresholds()


class MetricsOutageThresholds(_Settings):
    failed_requests: int = Field(default=0, ge=0)
    safe_mode_s: PositiveFloat = 5.0
    scale_downs_blind: int = Field(default=0, ge=0)
    resume_s: PositiveFloat = 5.0


class MetricsOutageDrill(DrillSection):
    high_share: Share = 1.3
    low_share: Share = 0.3
    warmup_s: PositiveFloat = 15.0
    outage_s: PositiveFloat = 15.0
    after_s: PositiveFloat = 20.0
    thresholds: MetricsOutageThresholds = MetricsOutageThresholds()


class DrillSettings(_Settings):
    stack: StackSettings = StackSettings()
    failover: FailoverDrill = FailoverDrill()
    burst: BurstDrill = BurstDrill()
    spot_interruption: SpotInterruptionDrill = Field(
        SpotInterruptionDrill(), alias="spot-interruption"
    )
    metrics_outage: MetricsOutageDrill = Field(default=MetricsOutageDrill(), alias="metrics-outage")


def load_drill_settings(path: Path = DEFAULT_DRILLS) -> DrillSettings:
    """Read and validate a drill config; ConfigError names every bad key."""
    document = read_yaml(path) or {}
    try:
        settings = DrillSettings.model_validate(document)
    except ValidationError as error:
        raise ConfigError(f"{path} is invalid:\n{describe_validation_error(error)}") from None
    if settings.stack.config is not None and not settings.stack.config.is_absolute():
        settings = settings.model_copy(
            update={"stack": settings.stack.model_copy(
                update={"config": path.parent / settings.stack.config}
            )}
        )  # fmt: skip
    return settings


def stack_config(
    settings: DrillSettings, drill: DrillSection, source: str, control: bool = False
) -> SpilloverConfig:
    """The controller config a drill's stack runs: the base config with its overrides,
    and for its control run the control's overrides over those."""
    base_path = settings.stack.config or LOCAL_DEFAULT
    base = merge(read_yaml(base_path), DRILL_STACK, "drill stack")
    document = merge(base, drill.overrides, source)
    if control:
        kind = source.removesuffix(".overrides")
        if drill.control is None:
            raise ConfigError(
                f"{kind} has no control section: add one (see {DEFAULT_DRILLS}) "
                "or run with --no-control"
            )
        source = f"{source} + {kind}.control.overrides"
        document = merge(document, drill.control.overrides, f"{kind}.control.overrides")
    return parse_config(document, source=f"{base_path} + {source}")


def merge(base: Any, overrides: Any, where: str) -> Any:
    """Deep-merge overrides into a config document. Lists of named items (pools) are
    merged by name, so `pools: {burst: {min_replicas: 1}}` changes one pool."""
    if isinstance(base, list) and isinstance(overrides, dict):
        names = [item.get("name") for item in base if isinstance(item, dict)]
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            pools = ", ".join(map(str, names))
            raise ConfigError(f"{where}: no pool named {', '.join(unknown)}; pools are {pools}")
        return [
            merge(item, overrides.get(item.get("name"), {}), f"{where}.{item.get('name')}")
            for item in base
        ]
    if isinstance(base, dict) and isinstance(overrides, dict):
        merged = dict(base)
        for key, value in overrides.items():
            merged[key] = merge(base[key], value, f"{where}.{key}") if key in base else value
        return merged
    return overrides
