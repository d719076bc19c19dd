"""A pool's `price:` section: what one replica costs per hour, and where that comes from."""

from __future__ import annotations

from pydantic import Field, model_validator

from spillover.config_base import StrictSettings
from spillover.market_config import MarketPrice

HOURS_PER_YEAR = 24 * 365


class AmortizedGpuCost(StrictSettings):
    """A GPU you own, priced per hour: compute + storage + labour + operations."""

    purchase_usd_per_gpu: float = Field(gt=0, description="Purchase price of one GPU, in USD.")
    lifetime_years: float = Field(gt=0, description="Years over which the purchase is written off.")
    power_kw_per_gpu: float = Field(
        ge=0, description="Average draw of one GPU and its share of the server, in kW."
    )
    usd_per_kwh: float = Field(ge=0, description="Electricity price, USD per kWh.")
    storage_usd_per_gpu_hour: float = Field(
        default=0.0, ge=0, description="Storage share per GPU-hour (model repository, logs)."
    )
    labour_usd_per_gpu_hour: float = Field(
        default=0.0, ge=0, description="People's time per GPU-hour (on-call, upgrades)."
    )
    operations_usd_per_gpu_hour: float = Field(
        default=0.0,
        ge=0,
        description="Rack space, cooling, network, support contracts per GPU-hour.",
    )

    @property
    def usd_per_gpu_hour(self) -> float:
        compute = self.purchase_usd_per_gpu / (self.lifetime_years * HOURS_PER_YEAR)
        power = self.power_kw_per_gpu * self.usd_per_kwh
        return (
            compute
            + power
            + self.storage_usd_per_gpu_hour
            + self.labour_usd_per_gpu_hour
            + self.operations_usd_per_gpu_hour
        )


class Price(StrictSettings):
    """What one replica of a pool costs per hour, and where that figure comes from."""

    usd_per_replica_hour: float | None = Field(
        default=None,
        gt=0,
        description="Hourly price of one replica (cloud: spot or on-demand "
        "price of its instance). Give this or `amortized`.",
    )
    amortized: AmortizedGpuCost | None = Field(
        default=None,
        description="Owned GPUs: the hourly price is derived from purchase, "
        "lifetime, power and running costs. Give this or `usd_per_replica_hour`.",
    )
    gpus_per_replica: int = Field(default=1, ge=1, description="GPUs one replica occupies.")
    source: str = Field(
        min_length=1,
        description="Where the price comes from, recorded with every ledger "
        "window (e.g. 'AWS spot price history, g5.xlarge, us-east-1, 2026-11').",
    )
    market: MarketPrice | None = Field(
        default=None,
        description="Burst pools: take the price from AWS (spot history or the Pricing API); "
        "usd_per_replica_hour is then the price book used until and whenever AWS cannot answer.",
    )

    @model_validator(mode="after")
    def _one_way_to_price(self) -> Price:
        if (self.usd_per_replica_hour is None) == (self.amortized is None):
            raise ValueError("give exactly one of usd_per_replica_hour and amortized")
        if self.market is not None and self.usd_per_replica_hour is None:
            raise ValueError("market needs usd_per_replica_hour as its price book")
        return self

    @property
    def hourly_usd(self) -> float:
        if self.amortized is not None:
            return self.amortized.usd_per_gpu_hour * self.gpus_per_replica
        assert self.usd_per_replica_hour is not None  # checked at load
        return self.usd_per_replica_hour
