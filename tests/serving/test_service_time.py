"""The service-time model a local replica is held to, without Triton."""

from __future__ import annotations

import pytest

from spillover.serving.service_time import (
    CAPACITY_VARIABLE,
    batch_seconds,
    capacity_from_environment,
    handoff_seconds,
    remaining_seconds,
)


@pytest.mark.parametrize(
    ("rows", "instances", "seconds"),
    [(1, 1, 1 / 300), (32, 1, 32 / 300), (32, 2, 64 / 300)],
    ids=["one-row", "a-batch-costs-per-row", "two-instances-each-at-half"],
)
def test_a_batch_holds_an_instance_for_its_rows_at_capacity(
    rows: int, instances: int, seconds: float
) -> None:
    assert batch_seconds(rows, 300.0, instances) == pytest.approx(seconds)


def test_packing_users_into_requests_cannot_beat_the_cap() -> None:
    """One request of 64 users takes as long as 64 requests of one: rows/s is the cap."""
    one_big = remaining_seconds(64, 0.0, 300.0) + handoff_seconds(64)
    many_small = 64 * (remaining_seconds(1, 0.0, 300.0) + handoff_seconds(1))
    assert 64 / one_big == pytest.approx(300.0)
    assert 64 / many_small == pytest.approx(300.0)


@pytest.mark.parametrize(
    ("rows", "elapsed_s", "capacity", "expected_s"),
    [
        (16, 0.010, 200.0, 16 / 200 - 16 * 0.0002 - 0.010),
        (16, 0.200, 200.0, 0.0),
        (16, 0.010, None, 0.0),
        (0, 0.0, 200.0, 0.0),
    ],
    ids=["sleeps-the-remainder", "slower-than-capacity-no-sleep", "uncapped", "no-rows"],
)
def test_execute_sleeps_what_remains_after_its_work_and_the_handoff(
    rows: int, elapsed_s: float, capacity: float | None, expected_s: float
) -> None:
    assert remaining_seconds(rows, elapsed_s, capacity) == pytest.approx(expected_s)


@pytest.mark.parametrize(
    ("environ", "capacity"),
    [({}, None), ({CAPACITY_VARIABLE: ""}, None), ({CAPACITY_VARIABLE: "300"}, 300.0)],
    ids=["unset", "empty", "set"],
)
def test_capacity_comes_from_the_environment(
    environ: dict[str, str], capacity: float | None
) -> None:
    assert capacity_from_environment(environ) == capacity


@pytest.mark.parametrize("text", ["fast", "0", "-5", "inf", "nan"])
def test_a_bad_capacity_names_the_variable(text: str) -> None:
    with pytest.raises(ValueError, match=CAPACITY_VARIABLE):
        capacity_from_environment({CAPACITY_VARIABLE: text})
