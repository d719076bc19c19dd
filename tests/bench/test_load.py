"""The closed-loop runner stops by itself and counts failures instead of crashing."""

from __future__ import annotations

import asyncio

import pytest

from spillover.bench.load import run_closed_loop


def test_stops_at_the_request_bound():
    sent: list[int] = []

    async def send(index: int) -> None:
        sent.append(index)

    result = asyncio.run(run_closed_loop("count", send, 4, duration_s=30, max_requests=100))
    assert sorted(sent) == list(range(100))
    assert result.ok == 100 and result.failures == []


def test_stops_at_the_time_bound():
    async def send(index: int) -> None:
        await asyncio.sleep(0.01)

    result = asyncio.run(run_closed_loop("time", send, 2, duration_s=0.3, max_requests=10**6))
    # The deadline is checked before each send, so the run ends within one request of it.
    assert 0.3 <= result.elapsed_s < 5.0
    assert 2 <= result.ok <= 62  # two workers, at most one request per 10 ms each


def test_failures_are_counted_and_load_goes_on():
    async def send(index: int) -> None:
        if index % 4 == 0:
            raise ConnectionError("replica gone")

    result = asyncio.run(run_closed_loop("fail", send, 3, duration_s=30, max_requests=40))
    assert len(result.failures) == 10 and result.ok == 30
    assert result.failures[0] == "ConnectionError: replica gone"
    assert result.percentile_ms(50) == pytest.approx(0.0, abs=5.0)
