"""Each pool's price at a tick: the config's price book, or AWS's market price when a pool asks.

AWS is asked every `market.refresh_seconds` (spot prices change every few minutes at most),
never once per tick, and on a thread of its own so the tick never waits for it. What AWS
cannot answer (throttled beyond botocore's adaptive retries, denied, unreachable) leaves
the last known market price in force, marked stale with its age; before any answer, and
without AWS credentials, the price book is charged. The tick never fails on a price.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from spillover.config import PoolConfig, SpilloverConfig
from spillover.controller.pool_prices import PoolPrice
from spillover.drivers.aws_prices import (
    AwsPriceError,
    AwsPrices,
    MarketQuote,
    aws_session,
    has_credentials,
)
from spillover.market_config import MarketPrice

logger = logging.getLogger("spillover.controller")

RETRY_AFTER_FAILURE_FRACTION = 0.2
"""After a failed refresh, ask again after this share of the refresh interval: a price
that is stale should not stay stale for a whole interval more."""
NO_CREDENTIALS = (
    "no AWS credentials (IRSA role, AWS_PROFILE or AWS_ACCESS_KEY_ID): charged at the price book"
)

PricesFor = Callable[[MarketPrice], AwsPrices]


def book_price(pool: PoolConfig, note: str | None = None) -> PoolPrice:
    return PoolPrice(pool.name, pool.price.hourly_usd, pool.price.source, "book", note=note)


def market_source(quote: MarketQuote, market: MarketPrice) -> str:
    """The ledger's price source of a market price: what, where, since when (AWS's time)."""
    per = f" × {market.instances_per_replica} instances" if market.instances_per_replica > 1 else ""
    if quote.kind == "spot":
        return (
            f"AWS spot {quote.instance_type} {quote.zone} ${quote.usd_per_instance_hour:.4f}/h"
            f"{per} since {quote.since} (lowest of {quote.candidates} type×zone prices)"
        )
    return (
        f"AWS on-demand {quote.instance_type} {quote.region} ${quote.usd_per_instance_hour:.4f}/h"
        f"{per} (Pricing API, effective {quote.since})"
    )


@dataclass
class _Market:
    """One market pool's last answer and when AWS was last asked."""

    pool: PoolConfig
    market: MarketPrice
    prices: AwsPrices | None
    known: PoolPrice | None = None
    known_at: float | None = None
    asked_at: float | None = None
    error: str | None = None

    def due(self, now: float) -> bool:
        if self.asked_at is None:
            return True
        wait = self.market.refresh_seconds
        if self.error is not None:
            wait *= RETRY_AFTER_FAILURE_FRACTION
        return now - self.asked_at >= wait


class PriceFeed:
    """Prices of every configured pool; market pools refreshed from AWS when due."""

    def __init__(
        self,
        config: SpilloverConfig,
        prices_for: PricesFor | None = None,
        credentials: bool | None = None,
    ) -> None:
        self.config = config
        markets = [(pool, pool.price.market) for pool in config.pools if pool.price.market]
        session = aws_session() if markets and prices_for is None else None
        if credentials is None:
            credentials = session is None or has_credentials(session)
        self.credentials = credentials
        if markets and not credentials:
            logger.warning("%s: %s", ", ".join(pool.name for pool, _ in markets), NO_CREDENTIALS)

        def default_prices(market: MarketPrice) -> AwsPrices:
            return AwsPrices(market.region, market.endpoint_url, session)

        make = prices_for or default_prices
        self._markets = {
            pool.name: _Market(pool, market, make(market) if credentials else None)
            for pool, market in markets
        }
        self._lock = threading.Lock()
        """Guards each _Market's fields and `_asking`: refreshes run on their own threads."""
        self._asking: dict[str, threading.Thread] = {}

    def prime(self, now: float) -> None:
        """Ask AWS for every market pool now and wait for the answers: before the first
        tick, so it is charged at market prices rather than the price books."""
        for entry in self._markets.values():
            if entry.prices is not None:
                with self._lock:
                    entry.asked_at = now
                self._refresh(entry, now)

    def prices(self, now: float) -> dict[str, PoolPrice]:
        """Every pool's price now, from what AWS last said; market pools that are due are
        asked again in the background, so a slow or throttled AWS never holds up a tick
        (the answer is charged from the tick after it arrives)."""
        current = {pool.name: self._price(pool, now) for pool in self.config.pools}
        for entry in self._markets.values():
            self._ask_if_due(entry, now)
        return current

    def settle(self, timeout_s: float = 60.0) -> None:
        """Wait for the refreshes under way (a stopping controller, a test between ticks)."""
        with self._lock:
            running = list(self._asking.values())
        for thread in running:
            thread.join(timeout_s)

    def _ask_if_due(self, entry: _Market, now: float) -> None:
        if entry.prices is None:
            return
        with self._lock:
            busy = entry.pool.name in self._asking
            if busy or not entry.due(now):
                return
            entry.asked_at = now
            thread = threading.Thread(
                target=self._refresh_in_background,
                args=(entry, now),
                name=f"price-{entry.pool.name}",
                daemon=True,  # a controller stopping mid-call need not wait for AWS
            )
            self._asking[entry.pool.name] = thread
        thread.start()

    def _refresh_in_background(self, entry: _Market, now: float) -> None:
        try:
            self._refresh(entry, now)
        finally:
            with self._lock:
                self._asking.pop(entry.pool.name, None)

    def _price(self, pool: PoolConfig, now: float) -> PoolPrice:
        entry = self._markets.get(pool.name)
        if entry is None:
            return book_price(pool)
        if entry.prices is None:
            return book_price(pool, NO_CREDENTIALS)
        with self._lock:
            known, known_at, error = entry.known, entry.known_at, entry.error
        if known is None or known_at is None:
            waiting = error or "AWS has not answered yet"
            return book_price(pool, f"{waiting}; charged at the price book")
        age = now - known_at
        if error is not None:
            return PoolPrice(
                pool.name,
                known.usd_per_replica_hour,
                known.source,
                "stale",
                age_s=age,
                note=f"{error}; the last known price, {age:.0f} s old",
            )
        return PoolPrice(pool.name, known.usd_per_replica_hour, known.source, "market", age_s=age)

    def _refresh(self, entry: _Market, now: float) -> None:
        """Ask AWS once (botocore retries inside) and keep the answer or the error."""
        assert entry.prices is not None
        market = entry.market
        try:
            if entry.pool.capacity_type == "spot":
                quote = entry.prices.lowest_spot(market.instance_types, market.zones)
            else:
                quote = entry.prices.on_demand(market.instance_types[0])
        except AwsPriceError as error:
            if entry.error != str(error):
                logger.warning("pool %s: price not refreshed: %s", entry.pool.name, error)
            with self._lock:
                entry.error = str(error)
            return
        except Exception as error:  # a price must never fail the tick
            logger.exception("pool %s: price not refreshed", entry.pool.name)
            with self._lock:
                entry.error = f"unexpected {type(error).__name__}: {error}"
            return
        price = quote.usd_per_instance_hour * market.instances_per_replica
        source = market_source(quote, market)
        if entry.known is None or entry.known.source != source:
            logger.info("pool %s: $%.4f/replica-hour from %s", entry.pool.name, price, source)
        with self._lock:
            entry.known = PoolPrice(entry.pool.name, price, source, "market", age_s=0.0)
            entry.known_at = now
            entry.error = None
