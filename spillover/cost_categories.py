"""`costs:` in spillover.yaml: unit prices and quantities of the categories beside compute.

The cost model the project follows is C = C_compute + C_storage + C_network + C_labour +
C_operations, each a unit price times a quantity. Compute's price is the pool's `price`
(or a market price the controller is handed each tick); this section prices the rest.
Every figure names its `source`, which the ledger records with every window it prices.
The section is optional: without it, a pool's amortized storage, labour and operations
shares (if any) are still charged as those categories.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from spillover.config_base import StrictSettings

Source = Annotated[
    str,
    Field(min_length=1, description="Where the figure comes from, recorded in the ledger."),
]


class StoredModel(StrictSettings):
    """GB of model held somewhere, at a storage price."""

    gb: float = Field(ge=0, description="GB stored (decimal: 10^9 bytes).")
    usd_per_gb_month: float = Field(ge=0, description="Price of one GB stored for a month.")
    source: Source


class StorageCost(StrictSettings):
    """Model bytes the burst site holds: on each replica's volume and in the S3 bucket."""

    per_replica: StoredModel | None = Field(
        default=None,
        description="Each burst replica's copy of the model repository (its volume): "
        "billed while the replica runs.",
    )
    bucket: StoredModel | None = Field(
        default=None,
        description="The S3 model bucket: billed whether or not replicas run, split "
        "evenly over the burst pools.",
    )


class NetworkCost(StrictSettings):
    """Bytes leaving the cloud to the private site: responses and metrics of burst pools."""

    usd_per_gb: float = Field(ge=0, description="Data transfer out, per GB.")
    source: Source
    response_bytes: int = Field(
        gt=0,
        description="Bytes of one response. The gateway does not count bytes, so the "
        "ledger estimates requests x this, and says so in the price source.",
    )
    metrics_bytes_per_scrape: int = Field(
        default=0,
        ge=0,
        description="Bytes of one replica's Triton /metrics page, read once per tick.",
    )


class HoursCost(StrictSettings):
    """People's or operators' hours per month at an hourly rate, spread evenly over time."""

    name: str = Field(min_length=1, description="What the hours are for (on-call, upgrades).")
    hours_per_month: float = Field(gt=0, description="Hours per month (730 hours).")
    usd_per_hour: float = Field(gt=0, description="Rate of one hour.")
    source: Source
    pools: dict[str, float] | None = Field(
        default=None,
        description="Share of the hours per pool, as weights (normalised to sum 1); "
        "none: split evenly over every pool.",
    )

    @model_validator(mode="after")
    def _weights_positive(self) -> HoursCost:
        if self.pools is not None:
            if not self.pools:
                raise ValueError("pools is empty: leave it out to split evenly")
            bad = sorted(name for name, weight in self.pools.items() if not weight > 0)
            if bad:
                raise ValueError(f"pools weights must be > 0: {', '.join(bad)}")
        return self


class Costs(StrictSettings):
    """Unit prices of storage, network, labour and operations (compute is each pool's price)."""

    storage: StorageCost | None = Field(default=None, description="Model storage of burst.")
    network: NetworkCost | None = Field(default=None, description="Burst-to-private traffic.")
    labour: list[HoursCost] = Field(default_factory=list, description="People's hours.")
    operations: list[HoursCost] = Field(
        default_factory=list, description="Operations hours (vendor support, on-site)."
    )

    def check_pools(self, names: list[str]) -> None:
        """Every pool a share names exists, and each item is named once per category."""
        for category in ("labour", "operations"):
            items: list[HoursCost] = getattr(self, category)
            seen = [item.name for item in items]
            repeated = sorted({name for name in seen if seen.count(name) > 1})
            if repeated:
                raise ValueError(f"costs.{category}: names repeated: {', '.join(repeated)}")
            for index, item in enumerate(items):
                unknown = sorted(set(item.pools or ()) - set(names))
                if unknown:
                    raise ValueError(
                        f"costs.{category}[{index}].pools names no pool: {', '.join(unknown)} "
                        f"(pools: {', '.join(names)})"
                    )
