"""Market prices from a moto server on loopback: spot history over types × zones, a price change
mid-window, throttling, the Pricing API moto does not implement, no credentials.

What moto does and does not do, and how these tests use it (moto 5.2):
- EC2 DescribeSpotPriceHistory answers from moto's table of instance-type offerings: one entry
  per (type, zone) the region offers, with its availability-zone filter and InstanceTypes
  applied, every price the canned "0.00001" at 2006-01-02T15:04:05Z; StartTime and
  ProductDescriptions are ignored, and moto has no way to seed prices. So the zone and type
  selection is moto's; distinct prices are written into moto's answer by a botocore
  `after-call` handler (`SeededSpotPrices`), after it crossed HTTP and botocore's parser.
- The Pricing API is not implemented: moto's server answers 500, botocore retries it, and the
  pool is charged at its price book with the error said (status, metrics).
- Throttling is not something moto injects; a `before-send` handler answers EC2's
  RequestLimitExceeded (HTTP 503) for it, so botocore's adaptive retry mode runs for real
  before the feed falls back.
"""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from prometheus_client import generate_latest

from spillover.config import SpilloverConfig
from spillover.controller.actuators import Actuators
from spillover.controller.cli import render_status
from spillover.controller.exporter import Exporter
from spillover.controller.ledger import Ledger
from spillover.controller.loop import ControllerLoop
from spillover.controller.prices import NO_CREDENTIALS, PriceFeed
from spillover.controller.snapshot import PoolObservation, ReplicaObservation, Snapshot
from spillover.drivers.aws_prices import MAX_ATTEMPTS, AwsPrices
from spillover.market_config import MarketPrice
from spillover.settings import ActuationSettings
from tests.aws.moto_server import MotoServer
from tests.controller.simulated import START, scenario_config

TYPES = ["g5.xlarge", "g6.xlarge", "g4dn.xlarge"]
ZONES = ["us-east-1a", "us-east-1b"]
SPOT_PRICES = {
    ("g5.xlarge", "us-east-1a"): "0.5200",
    ("g5.xlarge", "us-east-1b"): "0.4100",
    ("g6.xlarge", "us-east-1a"): "0.4700",
    ("g6.xlarge", "us-east-1b"): "0.3900",
    ("g4dn.xlarge", "us-east-1a"): "0.4500",
    ("g4dn.xlarge", "us-east-1b"): "0.4400",
}
"""The lowest the node group can get is g6.xlarge in us-east-1b."""
OUTSIDE_ZONES_PRICE = "0.0100"
"""Any zone moto returns outside ZONES is priced this low, so a lost zone filter shows."""


def market_config(url: str, refresh_seconds: float = 30, **pool: Any) -> SpilloverConfig:
    market = {
        "region": "us-east-1",
        "instance_types": TYPES,
        "zones": ZONES,
        "refresh_seconds": refresh_seconds,
        "endpoint_url": url,
    }
    return scenario_config(
        pools={
            "spot": {"price": {"usd_per_replica_hour": 1.0, "source": "book", "market": market}},
            **pool,
        }
    )


class SeededSpotPrices:
    """Writes these prices into moto's spot price history answers, and counts the calls."""

    def __init__(self, prices: dict[tuple[str, str], str], since: str = "2026-11-30T12:00:00Z"):
        self.prices, self.since, self.calls = dict(prices), since, 0

    def __call__(self, parsed: dict[str, Any], **_: Any) -> None:
        self.calls += 1
        for entry in parsed.get("SpotPriceHistory", []):
            key = (entry["InstanceType"], entry["AvailabilityZone"])
            entry["SpotPrice"] = self.prices.get(key, OUTSIDE_ZONES_PRICE)
            entry["Timestamp"] = self.since


class Throttled:
    """Answers every DescribeSpotPriceHistory with EC2's throttling error while `on`."""

    def __init__(self) -> None:
        self.on, self.attempts = False, 0

    def __call__(self, request: Any, **_: Any) -> AWSResponse | None:
        if not self.on:
            return None
        self.attempts += 1
        body = (
            b"<Response><Errors><Error><Code>RequestLimitExceeded</Code>"
            b"<Message>Request limit exceeded.</Message>"
            b"</Error></Errors><RequestID>x</RequestID></Response>"
        )
        return AWSResponse(request.url, 503, {}, _Raw(body))


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body


def session_with(moto: MotoServer, **handlers: Any) -> boto3.Session:
    session = moto.session()
    for event, handler in handlers.items():
        session.events.register(event, handler)
    return session


def feed(config: SpilloverConfig, session: boto3.Session, at: float | None = START) -> PriceFeed:
    """A feed whose AWS clients use `session` (its handlers), primed at `at` as `run` does."""
    prices = PriceFeed(config, lambda m: AwsPrices(m.region, m.endpoint_url, session))
    if at is not None:
        prices.prime(at)
    return prices


def test_the_default_feed_reads_moto_s_canned_spot_history_for_the_node_group(moto):
    """Production wiring (credentials from the environment, the config's endpoint): moto's
    canned answer, one entry per type × zone of the node group, the lowest named by zone."""
    config = market_config(moto.url)
    prices_feed = PriceFeed(config)
    prices_feed.prime(START)
    prices = prices_feed.prices(START)
    spot = prices["spot"]
    assert spot.origin == "market" and spot.note is None
    assert spot.usd_per_replica_hour == pytest.approx(0.00001)
    # All six prices tie: the lowest is the first by zone, then type.
    assert spot.source == (
        "AWS spot g4dn.xlarge us-east-1a $0.0000/h since 2006-01-02T15:04:05Z "
        "(lowest of 6 type×zone prices)"
    )
    assert prices["private"].origin == "book" and prices["private"].source == "amortized"


def test_the_lowest_price_among_the_node_groups_types_and_zones_is_charged(moto):
    seeded = SeededSpotPrices(SPOT_PRICES)
    session = session_with(moto, **{"after-call.ec2.DescribeSpotPriceHistory": seeded})
    config = market_config(moto.url)
    spot = feed(config, session).prices(START)["spot"]
    assert spot.usd_per_replica_hour == pytest.approx(0.39)
    assert "g6.xlarge us-east-1b $0.3900/h since 2026-11-30T12:00:00Z" in spot.source
    assert "lowest of 6" in spot.source


def test_a_replica_of_several_instances_costs_their_sum(moto):
    seeded = SeededSpotPrices(SPOT_PRICES)
    session = session_with(moto, **{"after-call.ec2.DescribeSpotPriceHistory": seeded})
    config = market_config(moto.url)
    spot_pool = config.pool("spot")
    assert spot_pool.price.market is not None
    two = spot_pool.price.market.model_copy(update={"instances_per_replica": 2})
    price = spot_pool.price.model_copy(update={"market": two})
    config = config.model_copy(
        update={
            "pools": [
                p.model_copy(update={"price": price}) if p.name == "spot" else p
                for p in config.pools
            ]
        }
    )
    spot = feed(config, session).prices(START)["spot"]
    assert spot.usd_per_replica_hour == pytest.approx(0.78)
    assert "× 2 instances" in spot.source


def tick(loop: ControllerLoop) -> Any:
    """One tick, then wait for the price refresh it may have started (in production the
    answer is simply charged from whichever tick follows it)."""
    report = loop.tick()
    assert loop.prices is not None
    loop.prices.settle()
    return report


class SpotObserver:
    """Two spot replicas and two private ones ready all along, at the loop's clock."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock

    def observe(self) -> Snapshot:
        private = tuple(ReplicaObservation(f"private-{i}", "ready", START - 60) for i in range(2))
        spot = tuple(ReplicaObservation(f"spot-{i}", "ready", START - 60) for i in range(2))
        return Snapshot(
            self.clock.now,
            150.0,
            (PoolObservation("private", private), PoolObservation("spot", spot)),
        )

    def gateway_counters(self) -> dict[str, tuple[int | None, int | None]]:
        return {}


class Clock:
    def __init__(self, step: float = 2.0) -> None:
        self.now, self.step = START, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


class Nothing:
    def scale(self, pool: str, replicas: int) -> None:
        pass

    def set_weights(self, shares: Any) -> None:
        pass


def loop_with(config: SpilloverConfig, prices: PriceFeed, tmp_path, clock: Clock) -> ControllerLoop:
    actuators = Actuators(
        {pool.name: Nothing() for pool in config.pools},
        Nothing(),
        ActuationSettings(),
        sleep=lambda _: None,
    )
    return ControllerLoop(
        config,
        SpotObserver(clock),
        actuators,
        Ledger(tmp_path / "controller.db", window_seconds=60),
        Exporter(config),
        prices=prices,
        clock=clock,
    )


def test_a_price_change_mid_window_is_a_second_ledger_row_from_that_moment(moto, tmp_path):
    seeded = SeededSpotPrices(SPOT_PRICES)
    session = session_with(moto, **{"after-call.ec2.DescribeSpotPriceHistory": seeded})
    config = market_config(moto.url, refresh_seconds=30)
    clock = Clock()
    loop = loop_with(config, feed(config, session), tmp_path, clock)
    for _ in range(10):  # START+2 .. START+20
        tick(loop)
    before = [r for r in loop.ledger.windows(START, START + 60) if r.pool == "spot"]
    seeded.prices[("g6.xlarge", "us-east-1b")] = "0.6100"  # g5 in 1b ($0.41) is now the lowest
    seeded.since = "2026-11-30T12:05:00Z"
    for _ in range(19):  # to START+58: asked at START+30, charged from START+32
        tick(loop)
    rows = [r for r in loop.ledger.windows(START, START + 60) if r.pool == "spot"]
    assert seeded.calls == 2, "asked at the start and after refresh_seconds, not every tick"
    assert [(r.window_start, r.usd_per_replica_hour) for r in rows] == [
        (START, 0.39),
        (START, 0.41),
    ]
    old, new = rows
    assert "g6.xlarge us-east-1b" in old.price_source and "since 2026-11-30T12:00:00Z" in (
        old.price_source
    )
    assert "g5.xlarge us-east-1b" in new.price_source and "12:05:00Z" in new.price_source
    # Two replicas at $0.39 from the first tick (START+2) to the tick after the answer
    # (START+32), then $0.41.
    assert old.replica_seconds == pytest.approx(2 * 30)
    assert new.replica_seconds == pytest.approx(2 * 26)
    assert old.usd == pytest.approx(2 * 30 * 0.39 / 3600)
    assert new.usd == pytest.approx(2 * 26 * 0.41 / 3600)
    # The old price's row only grew while that price was in force; nothing rewrote it.
    (earlier,) = before
    assert earlier.usd_per_replica_hour == old.usd_per_replica_hour
    assert earlier.price_source == old.price_source
    assert earlier.replica_seconds == pytest.approx(2 * 18)


def test_throttling_is_retried_adaptively_then_the_last_price_is_charged_with_its_age(
    moto, tmp_path
):
    seeded = SeededSpotPrices(SPOT_PRICES)
    throttled = Throttled()
    session = session_with(
        moto,
        **{
            "after-call.ec2.DescribeSpotPriceHistory": seeded,
            "before-send.ec2.DescribeSpotPriceHistory": throttled,
        },
    )
    config = market_config(moto.url, refresh_seconds=30)
    clock = Clock(step=31)
    loop = loop_with(config, feed(config, session), tmp_path, clock)  # a price at START
    throttled.on = True
    began = time.monotonic()
    report = loop.tick()  # START+31: charged the price, its refresh started
    tick_s = time.monotonic() - began
    assert loop.prices is not None
    loop.prices.settle()  # throttled on every attempt
    assert report.snapshot is not None, "the tick completed"
    assert tick_s < 1.0, f"the tick waited {tick_s:.1f} s for AWS"
    assert throttled.attempts == MAX_ATTEMPTS, "botocore retried before giving up"
    tick(loop)  # START+62: the last known price, stale; asked again, throttled again
    assert throttled.attempts == 2 * MAX_ATTEMPTS
    status = render_status(loop.ledger)
    assert (
        "spot: STALE price $0.3900: EC2 spot price history: "
        "RequestLimitExceeded: Request limit exceeded." in status
    )
    assert "the last known price, 62 s old" in status
    assert loop.exporter is not None
    metrics = generate_latest(loop.exporter.registry).decode()
    assert 'spillover_price_age_seconds{pool="spot"} 62.0' in metrics
    assert 'spillover_price_fallback{pool="spot"} 1.0' in metrics
    assert 'spillover_pool_price_usd_per_replica_hour{origin="stale",pool="spot"} 0.39' in metrics
    rows = [r for r in loop.ledger.windows(START, START + 120) if r.pool == "spot"]
    assert {r.usd_per_replica_hour for r in rows} == {0.39}, "charged the last known price"
    throttled.on = False
    tick(loop)  # START+93: still stale; asked again (a failed refresh retries sooner): answered
    tick(loop)  # START+124: fresh, as of START+93
    metrics = generate_latest(loop.exporter.registry).decode()
    assert 'spillover_price_fallback{pool="spot"} 0.0' in metrics
    assert 'spillover_price_age_seconds{pool="spot"} 31.0' in metrics
    assert "prices not fresh" not in render_status(loop.ledger)


def test_the_pricing_api_moto_lacks_leaves_on_demand_at_its_price_book(moto, tmp_path):
    market = {"region": "us-east-1", "instance_types": ["g5.xlarge"], "endpoint_url": moto.url}
    config = scenario_config(
        pools={
            "ondemand": {
                "price": {"usd_per_replica_hour": 3.0, "source": "on-demand", "market": market}
            }
        }
    )
    clock = Clock()
    loop = loop_with(config, PriceFeed(config), tmp_path, clock)
    tick(loop)  # the price book, AWS asked
    assert "ondemand: price book $3.0000: AWS has not answered yet" in render_status(loop.ledger)
    tick(loop)  # the price book, AWS's error said
    status = render_status(loop.ledger)
    assert "ondemand: price book $3.0000: Pricing API: 500" in status
    assert "charged at the price book" in status
    price = loop.prices.prices(clock.now)["ondemand"]  # type: ignore[union-attr]
    assert (price.origin, price.usd_per_replica_hour, price.source) == ("book", 3.0, "on-demand")


ON_DEMAND_PRODUCT = (
    '{"product": {"attributes": {"instanceType": "g5.xlarge"}}, "terms": {"OnDemand": '
    '{"T1": {"effectiveDate": "2026-11-01T00:00:00Z", "priceDimensions": {"D1": '
    '{"unit": "Hrs", "pricePerUnit": {"USD": "1.0060000000"}}}}}}}'
)


def test_a_pricing_api_answer_prices_on_demand_from_its_on_demand_term(moto):
    """Where the Pricing API is reachable (here: its answer put where moto has none)."""

    def answer(request: Any, **_: Any) -> AWSResponse:
        # The Pricing API lists each product as a JSON document inside a string.
        body = json.dumps({"FormatVersion": "aws_v1", "PriceList": [ON_DEMAND_PRODUCT]})
        return AWSResponse(request.url, 200, {}, _Raw(body.encode()))

    session = session_with(moto, **{"before-send.pricing.GetProducts": answer})
    quote = AwsPrices("us-east-1", moto.url, session).on_demand("g5.xlarge")
    assert (quote.kind, quote.usd_per_instance_hour, quote.since) == (
        "on-demand",
        1.006,
        "2026-11-01T00:00:00Z",
    )


def test_without_credentials_market_pools_are_priced_from_the_book_and_say_so(monkeypatch):
    """No AWS call is made (the endpoint is a closed port) and the tick is priced anyway."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_ROLE_ARN", raising=False)
    monkeypatch.delenv("AWS_WEB_IDENTITY_TOKEN_FILE", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    config = market_config("http://127.0.0.1:9")
    feed = PriceFeed(config)
    assert feed.credentials is False
    spot = feed.prices(START)["spot"]
    assert (spot.origin, spot.usd_per_replica_hour, spot.source) == ("book", 1.0, "book")
    assert spot.note == NO_CREDENTIALS


def test_market_config_defaults_refresh_every_few_minutes() -> None:
    market = MarketPrice(region="us-east-1", instance_types=["g5.xlarge"])
    assert 60 <= market.refresh_seconds <= 600
    assert market.zones == []
