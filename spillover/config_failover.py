"""The `failover:` section of spillover.yaml: how much burst capacity stays warm
against a private-site loss.

A warm burst replica is what lets the gateway move private's traffic the moment
private dies; a burst pool at 0 replicas serves nothing for its cold start (minutes
on EKS GPU nodes), so what a loss fails is private's demand times that cold start.
The reserve is a share of the demand private carries rather than a replica count:
the loss grows with that demand, so a share bounds it at every hour of the day, and
costs least when demand is low. A fixed count stays what it always was: a burst
pool's `min_replicas`.
"""

from __future__ import annotations

from pydantic import Field

from spillover.config_base import StrictSettings

HOURS_PER_MONTH = 24 * 30
"""A month for a reserve's monthly price: 30 days, 720 hours."""


class FailoverReserve(StrictSettings):
    """Burst capacity kept warm in case the private site is lost."""

    reserve_share: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Share of the demand private serves that the cheapest burst pool keeps "
        "warm replicas for, each planned at target_utilization. 1 covers a total private "
        "loss without a failed request; 0 keeps only the burst pools' min_replicas, and a "
        "loss fails the rest of private's demand for a burst cold start. `spillover config "
        "check` states what the setting costs.",
    )
