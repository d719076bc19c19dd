"""Rates are timed when their counters were read, not when the tick began.

A tick lists replicas through the pool drivers before it reads the gateway and
scrapes Triton; a Kubernetes listing can take seconds, a local one a few hundred
milliseconds, and the time varies tick to tick. Here the listing takes a seeded,
varying time on a fake clock while traffic flows at a constant rate, so every rate
the observer reports must be that constant rate. Stamping the counters with the
tick's start instead reads 150 rps as anything from ~20 to ~280 (issue 18's phantom
demand of 1338 rps at 150 offered).
"""

from __future__ import annotations

import random

import pytest

from spillover.controller.observe import Observer
from spillover.drivers.haproxy_runtime import GatewayUnreachableError
from spillover.drivers.pools import ReplicaTarget
from tests.controller.test_observe import Clock, FakeGateway, Server, TritonPage, config

RATE_RPS = 150.0
TICK_S = 1.0
TICKS = 40


class SteadyWorld:
    """One private replica serving RATE_RPS; counters follow the clock, and listing the
    replicas takes a seeded 0.05–0.9 s of it."""

    def __init__(self, seed: int) -> None:
        self.clock = Clock()
        self.started = self.clock.now
        self.random = random.Random(seed)
        self.gateway = FakeGateway()
        self.gateway.servers["private-0"] = Server()
        self.page = TritonPage()
        self.gateway_down = False
        self.observer = Observer(
            config(),
            [self],
            self,
            self.clock,
            monotonic=self.clock,
            fetch=self.fetch,
        )

    def _advance_counters(self) -> int:
        """Requests served since the start, as of now."""
        total = round(RATE_RPS * (self.clock.now - self.started))
        new = total - self.page.success
        self.gateway.serve("private-0", new)
        self.page.success += new
        self.page.executions += new
        self.page.compute_us += new * 2000
        self.page.queue_us += new * 1000
        return total

    # the pool driver
    def replicas(self) -> list[ReplicaTarget]:
        self.clock.now += self.random.uniform(0.05, 0.9)
        return [
            ReplicaTarget(
                "private-0",
                "private",
                True,
                True,
                1.0,
                "http://private-0/metrics",
                gateway_server="private-0",
            )
        ]

    def scale(self, pool: str, replicas: int) -> None:
        raise AssertionError("the observer never scales")

    # the gateway
    def stats(self):  # type: ignore[no-untyped-def]
        if self.gateway_down:
            raise GatewayUnreachableError("no gateway answers on test.sock")
        self._advance_counters()
        return self.gateway.stats()

    # the replica's /metrics
    def fetch(self, url: str, timeout_s: float) -> str:
        self._advance_counters()
        return self.page.text()

    def run(self) -> list:  # type: ignore[type-arg]
        snapshots = []
        for _ in range(TICKS):
            start = self.clock.now
            snapshots.append(self.observer.observe())
            # the loop sleeps until the next tick is due
            self.clock.now = max(self.clock.now, start + TICK_S)
        return snapshots[2:]  # the first two have no interval yet


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_demand_and_served_rates_are_the_offered_rate_whatever_the_listing_takes(
    seed: int,
) -> None:
    for snapshot in SteadyWorld(seed).run():
        assert snapshot.demand_rps == pytest.approx(RATE_RPS, rel=0.02)
        assert snapshot.pool("private").served_rps == pytest.approx(RATE_RPS, rel=0.02)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rates_from_triton_alone_are_the_offered_rate(seed: int) -> None:
    """With the gateway unreadable, the served rate comes from Triton's counters, timed
    per replica by its own scrape. (Busy time enters the snapshot only as requests per
    busy second and queue time per request, ratios of one interval's counters, which no
    timing error can skew.)"""
    world = SteadyWorld(seed)
    world.gateway_down = True
    for snapshot in world.run():
        assert snapshot.pool("private").served_rps == pytest.approx(RATE_RPS, rel=0.02)
