"""The categories beside compute: unit prices from the config, and their window charges.

Pure (no clock, no file), under the "policy is pure" contract, like `charges`.

Compute is the `windows` table: replica-seconds at the pool's $/replica-hour, a price
the loop hands over each tick in `PoolUsage` (the config's, or a market price). Every
other category is a `CategoryRate`: a unit price and how much of its unit one second,
one replica-second or one request adds. A pool's rates in force are kept in its
watermark, so an interval is charged at the rates that held during it (a left Riemann
sum, as compute is), and an edited config changes the rates from its first tick on.

- storage: the burst pools' model copies (GB per replica, per replica-second) and the
  S3 model bucket (GB, billed every second, split evenly over burst pools), in
  GB-months of 730 hours (AWS's month);
- network: bytes leaving the cloud, estimated (the gateway does not count bytes):
  requests x response bytes, and one /metrics page per replica per tick;
- labour, operations: hours per month spread evenly over time, shared between pools
  by the config's weights;
- a private pool's amortized storage, labour and operations shares per GPU-hour, which
  were folded into its hourly price, are charged here per replica-hour in their own
  categories, so their sum is the amortized price as before.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

from spillover.config import HOURS_PER_YEAR, PoolConfig, Price, SpilloverConfig
from spillover.cost_categories import HoursCost

HOURS_PER_MONTH = 730.0
"""The month of GB-month prices and of `hours_per_month` (AWS bills 730-hour months)."""
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600
BYTES_PER_GB = 1e9

CATEGORIES = ("compute", "storage", "network", "labour", "operations")
"""Every category, in the order a bill lists them."""

Basis = Literal["replica_seconds", "seconds", "requests"]
"""What a rate's quantity grows with: replicas running, time, or requests served."""


@dataclass(frozen=True)
class CategoryRate:
    """One unit price of a category, and how much of its unit each basis unit adds."""

    category: str
    unit: str
    unit_price: float
    source: str
    basis: Basis
    quantity_per_basis: float


@dataclass(frozen=True)
class CategoryRow:
    """One pool, window, category and unit price, as stored (like a compute `WindowRow`)."""

    window_start: int
    pool: str
    role: str
    category: str
    unit: str
    unit_price: float
    source: str
    quantity: float
    usd: float


CATEGORY_KEY = ("window_start", "pool", "category", "unit", "unit_price", "source")
"""A price change mid-window adds a row, never blends two prices."""
CATEGORY_SUMS = ("quantity", "usd")


def compute_usd_per_replica_hour(price: Price) -> float:
    """The compute part of a configured price: an amortized price less its other shares."""
    if price.amortized is None:
        return price.hourly_usd
    cost = price.amortized
    per_gpu = cost.purchase_usd_per_gpu / (cost.lifetime_years * HOURS_PER_YEAR)
    return (per_gpu + cost.power_kw_per_gpu * cost.usd_per_kwh) * price.gpus_per_replica


def category_rates(config: SpilloverConfig, pool: PoolConfig) -> tuple[CategoryRate, ...]:
    """The rates the config puts on a pool besides compute."""
    rates = list(_amortized_shares(pool))
    if pool.role == "burst":
        burst_pools = sum(1 for other in config.pools if other.role == "burst")
        rates += _storage(config, burst_pools) + _network(config)
    for category in ("labour", "operations"):
        for item in getattr(config.costs, category):
            rates += _hours(category, item, pool.name, [p.name for p in config.pools])
    return tuple(rate for rate in rates if rate.unit_price > 0 and rate.quantity_per_basis > 0)


def _amortized_shares(pool: PoolConfig) -> list[CategoryRate]:
    cost = pool.price.amortized
    if cost is None:
        return []
    gpus = pool.price.gpus_per_replica
    shares = (
        ("storage", cost.storage_usd_per_gpu_hour),
        ("labour", cost.labour_usd_per_gpu_hour),
        ("operations", cost.operations_usd_per_gpu_hour),
    )
    return [
        CategoryRate(
            category,
            "replica-h",
            usd * gpus,
            f"{pool.price.source} ({category} share of the amortized price)",
            "replica_seconds",
            1 / 3600,
        )
        for category, usd in shares
    ]


def _storage(config: SpilloverConfig, burst_pools: int) -> list[CategoryRate]:
    storage = config.costs.storage
    rates = []
    if storage is not None and storage.per_replica is not None:
        held = storage.per_replica
        rates.append(
            CategoryRate(
                "storage",
                "GB-month",
                held.usd_per_gb_month,
                f"{held.source}; {held.gb:g} GB of model per replica",
                "replica_seconds",
                held.gb / SECONDS_PER_MONTH,
            )
        )
    if storage is not None and storage.bucket is not None:
        held = storage.bucket
        rates.append(
            CategoryRate(
                "storage",
                "GB-month",
                held.usd_per_gb_month,
                f"{held.source}; S3 model bucket {held.gb:g} GB split over "
                f"{burst_pools} burst pool(s)",
                "seconds",
                held.gb / burst_pools / SECONDS_PER_MONTH,
            )
        )
    return rates


def _network(config: SpilloverConfig) -> list[CategoryRate]:
    network = config.costs.network
    if network is None:
        return []
    tick = config.policy.tick_seconds
    return [
        CategoryRate(
            "network",
            "GB",
            network.usd_per_gb,
            f"{network.source}; estimated as requests x {network.response_bytes} B per "
            "response (the gateway does not count bytes)",
            "requests",
            network.response_bytes / BYTES_PER_GB,
        ),
        CategoryRate(
            "network",
            "GB",
            network.usd_per_gb,
            f"{network.source}; estimated as {network.metrics_bytes_per_scrape} B of "
            f"/metrics per replica every {tick:g} s tick",
            "replica_seconds",
            network.metrics_bytes_per_scrape / tick / BYTES_PER_GB,
        ),
    ]


def _hours(category: str, item: HoursCost, pool: str, pools: list[str]) -> list[CategoryRate]:
    weights = item.pools if item.pools is not None else dict.fromkeys(pools, 1.0)
    share = weights.get(pool, 0.0) / sum(weights.values())
    return [
        CategoryRate(
            category,
            "h",
            item.usd_per_hour,
            f"{item.name}: {item.source}; {share:.0%} of {item.hours_per_month:g} h/month",
            "seconds",
            item.hours_per_month * share / SECONDS_PER_MONTH,
        )
    ]


def category_charges(
    rates: Sequence[CategoryRate],
    pool: str,
    role: str,
    replicas: int,
    pieces: Sequence[tuple[int, float]],
    requests: int,
) -> list[CategoryRow]:
    """Window increments of every rate over an interval's pieces (window, seconds); the
    requests go whole to the last piece, as the compute rows' counters do."""
    rows = []
    for rate in rates:
        for index, (window_start, seconds) in enumerate(pieces):
            basis = {
                "replica_seconds": replicas * seconds,
                "seconds": seconds,
                "requests": requests if index == len(pieces) - 1 else 0,
            }[rate.basis]
            quantity = basis * rate.quantity_per_basis
            if quantity == 0:
                continue
            rows.append(
                CategoryRow(
                    window_start,
                    pool,
                    role,
                    rate.category,
                    rate.unit,
                    rate.unit_price,
                    rate.source,
                    quantity,
                    quantity * rate.unit_price,
                )
            )
    return rows


def rates_to_json(rates: Sequence[CategoryRate]) -> str:
    return json.dumps([asdict(rate) for rate in rates], sort_keys=True)


def rates_from_json(text: str) -> tuple[CategoryRate, ...]:
    return tuple(CategoryRate(**fields) for fields in json.loads(text))
