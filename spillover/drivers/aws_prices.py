"""What AWS charges, through boto3: EC2 spot price history, the Pricing API, Cost Explorer.

The one module that holds these clients (the import-linter contract lists it), so the IAM
actions the controller needs are the calls in this file (tests/infra/aws_calls.py reads them).
Every client retries in botocore's adaptive mode, which also slows itself down when AWS
throttles; what still fails is an `AwsPriceError` for the caller to fall back from.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from spillover.errors import TemporaryError

MAX_ATTEMPTS = 4
"""Attempts per call, the first included; adaptive mode also rate-limits itself on throttling."""
CLIENT_CONFIG = Config(
    retries={"mode": "adaptive", "total_max_attempts": MAX_ATTEMPTS},
    # A tick waits for these calls: a dead endpoint must cost seconds, not minutes.
    connect_timeout=3,
    read_timeout=10,
)
PRICING_REGION = "us-east-1"
"""The Pricing API answers only in a few regions (us-east-1, eu-central-1, ap-south-1);
it prices every region from there."""
SPOT_PRODUCT = "Linux/UNIX"
MAX_REASON_CHARS = 160
MAX_PAGES = 50
"""Bound on any paged read: a node group's types × zones fit in one page."""


class AwsPriceError(TemporaryError):
    """AWS did not say (throttled after retries, denied, unreachable, not implemented)."""


@dataclass(frozen=True)
class MarketQuote:
    """One instance's hourly price, as AWS stated it."""

    kind: Literal["spot", "on-demand"]
    usd_per_instance_hour: float
    instance_type: str
    region: str
    zone: str | None
    """Spot prices are per zone; on-demand list prices per region (None)."""
    since: str
    """When AWS set this price (spot history's timestamp; the on-demand term's effective
    date), UTC ISO-8601: part of the ledger's price source, so a new price is a new row."""
    candidates: int
    """How many (type, zone) prices it was the lowest of (1 for on-demand)."""


def aws_session() -> boto3.Session:
    """A session on botocore's usual credential chain (IRSA, env, profile)."""
    return boto3.Session()


def has_credentials(session: boto3.Session) -> bool:
    return session.get_credentials() is not None


class AwsPrices:
    """Spot and on-demand prices of EC2 instances in one region."""

    def __init__(
        self, region: str, endpoint_url: str | None = None, session: boto3.Session | None = None
    ) -> None:
        session = session or aws_session()
        self.region = region
        self._ec2 = session.client(
            "ec2", region_name=region, endpoint_url=endpoint_url, config=CLIENT_CONFIG
        )
        self._pricing = session.client(
            "pricing", region_name=PRICING_REGION, endpoint_url=endpoint_url, config=CLIENT_CONFIG
        )

    def lowest_spot(self, instance_types: Sequence[str], zones: Sequence[str]) -> MarketQuote:
        """The lowest current spot price among `instance_types` in `zones` (all: empty).

        History from now back returns each (type, zone)'s price in force now (AWS adds
        the last change before StartTime); only the newest entry of each pair counts.
        """
        filters = [{"Name": "availability-zone", "Values": list(zones)}] if zones else []
        newest: dict[tuple[str, str], dict[str, Any]] = {}
        try:
            pages = self._ec2.get_paginator("describe_spot_price_history").paginate(
                InstanceTypes=list(instance_types),
                ProductDescriptions=[SPOT_PRODUCT],
                StartTime=datetime.now(timezone.utc),
                Filters=filters,
            )
            for page in _bounded(pages):
                for entry in page.get("SpotPriceHistory", []):
                    key = (entry["InstanceType"], entry["AvailabilityZone"])
                    if key not in newest or entry["Timestamp"] > newest[key]["Timestamp"]:
                        newest[key] = entry
        except (BotoCoreError, ClientError) as error:
            raise AwsPriceError(f"EC2 spot price history: {_reason(error)}") from None
        wanted = [e for (kind, _), e in newest.items() if kind in instance_types]
        if not wanted:
            raise AwsPriceError(
                f"EC2 has no spot price for {', '.join(instance_types)} in "
                f"{', '.join(zones) or self.region}"
            )
        lowest = min(
            wanted, key=lambda e: (float(e["SpotPrice"]), e["AvailabilityZone"], e["InstanceType"])
        )
        return MarketQuote(
            kind="spot",
            usd_per_instance_hour=float(lowest["SpotPrice"]),
            instance_type=lowest["InstanceType"],
            region=self.region,
            zone=lowest["AvailabilityZone"],
            since=_iso(lowest["Timestamp"]),
            candidates=len(wanted),
        )

    def on_demand(self, instance_type: str) -> MarketQuote:
        """The on-demand list price of a shared-tenancy Linux instance in this region."""
        try:
            answer = self._pricing.get_products(
                ServiceCode="AmazonEC2",
                Filters=[
                    {"Type": "TERM_MATCH", "Field": field, "Value": value}
                    for field, value in (
                        ("instanceType", instance_type),
                        ("regionCode", self.region),
                        ("operatingSystem", "Linux"),
                        ("tenancy", "Shared"),
                        ("preInstalledSw", "NA"),
                        ("capacitystatus", "Used"),
                    )
                ],
                MaxResults=10,
            )
        except (BotoCoreError, ClientError) as error:
            raise AwsPriceError(f"Pricing API: {_reason(error)}") from None
        for item in answer.get("PriceList", []):
            price = _on_demand_term(json.loads(item) if isinstance(item, str) else item)
            if price is not None:
                usd, effective = price
                return MarketQuote("on-demand", usd, instance_type, self.region, None, effective, 1)
        raise AwsPriceError(f"Pricing API lists no on-demand price for {instance_type}")


def _on_demand_term(product: dict[str, Any]) -> tuple[float, str] | None:
    """(USD per hour, effective date) of a price-list product's on-demand term."""
    for term in product.get("terms", {}).get("OnDemand", {}).values():
        for dimension in term.get("priceDimensions", {}).values():
            usd = dimension.get("pricePerUnit", {}).get("USD")
            if dimension.get("unit") == "Hrs" and usd is not None and float(usd) > 0:
                return float(usd), str(term.get("effectiveDate", "unknown date"))
    return None


@dataclass(frozen=True)
class BillByTag:
    usd: dict[str, float]
    """USD per tag value; '' holds the resources without the tag."""
    estimated: bool
    """Cost Explorer says the period is not final yet (its figures still move)."""


class AwsBill:
    """Cost Explorer: what AWS billed, grouped by a cost-allocation tag."""

    def __init__(self, endpoint_url: str | None = None, session: boto3.Session | None = None):
        session = session or aws_session()
        # Cost Explorer is global; its endpoint is in us-east-1.
        self._ce = session.client(
            "ce", region_name="us-east-1", endpoint_url=endpoint_url, config=CLIENT_CONFIG
        )

    def cost_by_tag(
        self, tag_key: str, start: date, end: date, metric: str = "UnblendedCost"
    ) -> BillByTag:
        """USD per value of `tag_key` over [start, end); '' is the untagged resources."""
        totals: dict[str, float] = {}
        estimated = False
        request: dict[str, Any] = {
            "TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()},
            "Granularity": "MONTHLY",
            "Metrics": [metric],
            "GroupBy": [{"Type": "TAG", "Key": tag_key}],
        }
        try:
            for _ in range(MAX_PAGES):
                answer = self._ce.get_cost_and_usage(**request)
                for period in answer.get("ResultsByTime", []):
                    estimated = estimated or bool(period.get("Estimated"))
                    for group in period.get("Groups", []):
                        # Keys come back as "spillover:pool$burst"; "spillover:pool$" is untagged.
                        value = group["Keys"][0].partition("$")[2]
                        amount = float(group["Metrics"][metric]["Amount"])
                        totals[value] = totals.get(value, 0.0) + amount
                token = answer.get("NextPageToken")
                if not token:
                    return BillByTag(totals, estimated)
                request["NextPageToken"] = token
        except (BotoCoreError, ClientError) as error:
            raise AwsPriceError(f"Cost Explorer: {_reason(error)}") from None
        raise AwsPriceError(f"Cost Explorer: more than {MAX_PAGES} pages")


def _bounded(pages: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for index, page in enumerate(pages):
        if index >= MAX_PAGES:
            raise AwsPriceError(f"more than {MAX_PAGES} pages of prices")
        yield page


def _iso(stamp: datetime | str) -> str:
    if isinstance(stamp, str):
        return stamp
    return stamp.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _reason(error: BotoCoreError | ClientError) -> str:
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = details.get("Code", "error")
        text = f"{code}: {details.get('Message', '')}".strip().rstrip(":")
    else:
        text = str(error)
    # An endpoint that is not AWS (a proxy, a stand-in) may answer with a whole HTML page.
    text = " ".join(text.split())
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…"
