"""The observer on a real local stack: two Triton replicas behind HAProxy, real requests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from spillover.config import parse_config
from spillover.controller.observe import Observer
from spillover.drivers.haproxy import RuntimeApi
from spillover.drivers.haproxy_runtime import GatewayStats
from spillover.drivers.local.driver import LocalPoolDriver
from spillover.local.stack import LocalStack
from spillover.serving.batching import pad_histories
from spillover.serving.client import RecommenderClient
from tests.support import small_layout

REQUESTS_PER_PROTOCOL = 60
"""120 requests in all, split evenly over the two replicas: 60 each, enough
(over 20) for each pool's service rate to be measured."""

CONFIG = parse_config(
    {
        "pools": [
            {"name": "private", "role": "private", "capacity_type": "owned", "max_replicas": 2}
            | {"price": {"usd_per_replica_hour": 1.0, "source": "test"}},
            {"name": "burst", "role": "burst", "capacity_type": "spot", "max_replicas": 2}
            | {"price": {"usd_per_replica_hour": 1.0, "source": "test"}},
        ],
    }
)


@pytest.fixture
def stack(tmp_path: Path, model_file: Path) -> Iterator[LocalStack]:
    """1 private + 1 burst replica behind the gateway, sharing traffic 1:1; torn down."""
    stack = LocalStack(tmp_path / "run")
    stack.up(small_layout(private=1, burst=1), model_file, ready_timeout=120)
    try:
        yield stack
    finally:
        stack.down()


class TimedGateway:
    """The real gateway's stats, noting when each read came back."""

    def __init__(self, api: RuntimeApi) -> None:
        self.api = api
        self.read_at: list[float] = []

    def stats(self) -> GatewayStats:
        stats = self.api.stats()
        self.read_at.append(time.monotonic())
        return stats


def test_snapshot_measures_the_requests_sent_through_the_gateway(stack: LocalStack) -> None:
    gateway = TimedGateway(RuntimeApi(stack.run_dir.gateway_socket))
    observer = Observer(CONFIG, [LocalPoolDriver(stack.run_dir.path)], gateway)
    before = observer.observe()
    assert before.demand_rps is None  # nothing to compare with yet

    for protocol in ("http", "grpc"):
        with RecommenderClient(stack.gateway_endpoints[protocol], protocol) as client:
            for user in range(REQUESTS_PER_PROTOCOL):
                client.recommend([user], pad_histories([[1, 2, user]]))
    after = observer.observe()

    # Rates are over the time between the two reads of the gateway's counters, not
    # between the ticks' starts (listing replicas takes a varying part of each tick).
    seconds = gateway.read_at[-1] - gateway.read_at[-2]
    sent = 2 * REQUESTS_PER_PROTOCOL
    assert after.demand_rps is not None
    assert after.demand_rps * seconds == pytest.approx(sent, rel=0.01)
    assert after.weights == {"private": 50, "burst": 50}
    for name in ("private", "burst"):
        pool = after.pool(name)
        assert [replica.phase for replica in pool.replicas] == ["ready"]
        assert pool.served_rps is not None and pool.failed_rps == 0.0
        assert pool.served_rps * seconds == pytest.approx(sent / 2, abs=2)  # roundrobin 1:1
        # Triton's own measurements: every request waits at least for the batcher.
        assert pool.queue_time_ms is not None and pool.queue_time_ms > 0
        assert pool.queue_time_p99_ms is not None
        assert pool.queue_time_p99_ms >= pool.queue_time_ms
        assert pool.service_rate_rps is not None and pool.service_rate_rps > 0
    counters = observer.gateway_counters()
    assert sum(requests for requests, _ in counters.values()) == sent
    assert all(errors == 0 for _, errors in counters.values())
