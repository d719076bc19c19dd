"""`price.market` in spillover.yaml: a burst pool priced from AWS, with its price book behind it.

Its own module so config.py stays one screenful per concern; config.py imports it into
`Price`. Spot pools read EC2's spot price history for the node group's instance types and
zones; on-demand pools read the Pricing API. The pool's `usd_per_replica_hour` stays the
price book: what is charged until AWS answers and whenever it cannot.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from spillover.config_base import StrictSettings

InstanceType = Annotated[
    str,
    Field(pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9]+$", description="An EC2 instance type: g5.xlarge."),
]
Zone = Annotated[
    str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d[a-z]$", description="An availability zone.")
]

DEFAULT_REFRESH_SECONDS = 300.0


class MarketPrice(StrictSettings):
    """Where AWS says what one replica of this pool costs now."""

    region: str = Field(
        pattern=r"^[a-z]{2}(-[a-z]+)+-\d$",
        description="The region of the pool's node group (us-east-1).",
    )
    instance_types: list[InstanceType] = Field(
        min_length=1,
        description="The node group's instance types, in its order. Spot: the lowest price "
        "among them in `zones`; on-demand: the first one's (EKS launches on-demand nodes in "
        "list order).",
    )
    zones: list[Zone] = Field(
        default_factory=list,
        description="The node group's availability zones; empty means every zone of the "
        "region (spot prices differ by zone; the node group only gets its own zones').",
    )
    instances_per_replica: int = Field(
        default=1, ge=1, description="Instances one replica occupies (one GPU node each)."
    )
    refresh_seconds: float = Field(
        default=DEFAULT_REFRESH_SECONDS,
        ge=30,
        description="How often AWS is asked (spot prices change every few minutes at most).",
    )
    endpoint_url: str | None = Field(
        default=None,
        description="Another endpoint for the EC2, Pricing and Cost Explorer APIs (a VPC "
        "endpoint, or a test stand-in); none means AWS's public ones.",
    )

    @model_validator(mode="after")
    def _zones_in_region(self) -> MarketPrice:
        foreign = [zone for zone in self.zones if not zone.startswith(self.region)]
        if foreign:
            raise ValueError(f"zones {foreign} are not in region {self.region!r}")
        repeated = sorted({t for t in self.instance_types if self.instance_types.count(t) > 1})
        if repeated:
            raise ValueError(f"instance_types repeats {repeated}")
        return self
