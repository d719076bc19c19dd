"""Triton's counters turned into rates, queue times and service rates, on real /metrics text.

The fixtures are scrapes of the tritonserver this project runs (nvidia-pytriton's
build, CPU), trimmed; each file's first line says how it was captured.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from spillover.controller.triton_metrics import (
    MIN_REQUESTS_TO_MEASURE,
    ReplicaInterval,
    TritonCounters,
    interval,
    parse_counters,
    pool_traffic,
)

FIXTURES = Path(__file__).with_name("fixtures")


def scrape(name: str) -> TritonCounters:
    return parse_counters((FIXTURES / f"triton_{name}.txt").read_text())


def counters(**values: float) -> TritonCounters:
    fields = dict.fromkeys(
        (
            "success",
            "failure",
            "inferences",
            "executions",
            "request_us",
            "queue_us",
            "compute_us",
        ),
        0.0,
    )
    return TritonCounters(**(fields | values))


def replica(
    requests: float,
    executions: float | None = None,
    compute_us: float = 0.0,
    queue_us: float = 0.0,
    failures: float = 0.0,
    seconds: float = 1.0,
    queue_p99_us: float | None = None,
) -> ReplicaInterval:
    return ReplicaInterval(
        seconds=seconds,
        requests=requests,
        failures=failures,
        executions=requests if executions is None else executions,
        queue_us=queue_us,
        compute_us=compute_us,
        queue_p99_us=queue_p99_us,
    )


# --- parsing real scrapes -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        (
            "summaries_after",
            counters(
                success=250,
                inferences=250,
                executions=103,
                request_us=282737,
                queue_us=111893,
                compute_us=6503 + 149042 + 14177,
            ),
        ),
        (
            "counters_after",
            counters(
                success=250,
                inferences=250,
                executions=116,
                request_us=331607,
                queue_us=126512,
                compute_us=10743 + 171074 + 22343,
            ),
        ),
        ("idle", counters()),
    ],
    ids=["with-summaries", "counters-only", "idle-model"],
)
def test_counters_of_the_recommender_are_read_from_a_real_scrape(
    fixture: str, expected: TritonCounters
) -> None:
    assert dataclasses.replace(scrape(fixture), queue_p99_us=None) == expected


@pytest.mark.parametrize(
    ("fixture", "p99_us"),
    [("summaries_after", 827), ("counters_after", None), ("idle", None)],
    ids=["summary-quantile", "summaries-off", "nan-before-any-request"],
)
def test_p99_queue_time_comes_from_tritons_summary_when_it_has_one(
    fixture: str, p99_us: float | None
) -> None:
    assert scrape(fixture).queue_p99_us == p99_us


def test_versions_are_summed_and_other_models_ignored() -> None:
    text = """\
# TYPE nv_inference_request_success counter
nv_inference_request_success{model="recommender",version="1"} 30
nv_inference_request_success{model="recommender",version="2"} 12
nv_inference_request_success{model="ranker",version="1"} 500
# TYPE nv_inference_request_failure counter
nv_inference_request_failure{model="recommender",reason="REJECTED",version="1"} 2
nv_inference_request_failure{model="recommender",reason="BACKEND",version="2"} 1
"""
    parsed = parse_counters(text)
    assert (parsed.success, parsed.failure) == (42, 3)


def test_a_page_without_the_model_reads_as_nothing_served() -> None:
    assert parse_counters("# TYPE nv_cpu_utilization gauge\nnv_cpu_utilization 0.5\n") == counters()


def test_text_that_is_not_prometheus_raises_value_error() -> None:
    with pytest.raises(ValueError):
        parse_counters("<html><body>502 Bad Gateway</body></html>\n")


# --- one replica's interval ---------------------------------------------------------------


def test_interval_between_two_real_scrapes() -> None:
    """240 requests from 6 clients, merged into 93 executions on 2 model instances."""
    measured = interval(scrape("summaries_before"), scrape("summaries_after"), seconds=2.0)
    assert measured is not None
    assert (measured.requests, measured.executions) == (240, 93)
    assert measured.served_rps == 120.0
    traffic = pool_traffic([measured], model_instances=2)
    assert traffic.queue_time_ms == pytest.approx((111893 - 5997) / 240 / 1000)
    assert traffic.queue_time_p99_ms == 0.827
    # Compute is summed per request: 124,527 us over 240 requests in 93 executions
    # means the instances were busy 124,527 x 93 / 240 = 48,254 us.
    busy_s = (169722 - 45195) * 93 / 240 / 1e6
    assert measured.busy_seconds == pytest.approx(busy_s)
    assert traffic.service_rate_rps == pytest.approx(240 / busy_s * 2)


@pytest.mark.parametrize(
    ("measured", "instances", "service_rate"),
    [
        # 40 requests, 10 ms of compute each as Triton records it.
        (replica(40, executions=40, compute_us=40 * 10_000), 1, 100.0),
        # The same 40 requests merged 4 per execution: each records its batch's 10 ms,
        # but the instance was busy 10 x 10 ms, not 40 x 10 ms.
        (replica(40, executions=10, compute_us=40 * 10_000), 1, 400.0),
        (replica(40, executions=40, compute_us=40 * 10_000), 2, 200.0),
    ],
    ids=["one-request-per-execution", "four-requests-per-execution", "two-instances"],
)
def test_service_rate_counts_a_batch_once(
    measured: ReplicaInterval, instances: int, service_rate: float
) -> None:
    assert pool_traffic([measured], instances).service_rate_rps == pytest.approx(service_rate)


def test_a_saturated_replica_with_mixed_batches_learns_its_capacity() -> None:
    """A replica held to 200 rps, busy all 10 s: 950 lone requests of 5 ms and 21 batches
    of 50 taking 250 ms each. Triton adds each batch's 250 ms once per request in it, so
    the per-request estimate says 130 busy seconds in 10: learned capacity 15 rps, not
    200, and the controller would buy replicas it does not need. An instance cannot be
    busy longer than the interval."""
    batches = [(1, 0.005)] * 950 + [(50, 0.250)] * 21
    requests = sum(rows for rows, _ in batches)
    assert (requests, sum(seconds for _, seconds in batches)) == (2000, pytest.approx(10.0))
    saturated = replica(
        requests,
        executions=len(batches),
        compute_us=sum(rows * seconds * 1e6 for rows, seconds in batches),
        seconds=10.0,
    )
    assert pool_traffic([saturated]).service_rate_rps == pytest.approx(200.0)
    assert pool_traffic([saturated], model_instances=2).service_rate_rps == pytest.approx(200.0)


@pytest.mark.parametrize(
    ("requests", "measured"),
    [(MIN_REQUESTS_TO_MEASURE - 1, False), (MIN_REQUESTS_TO_MEASURE, True), (0, False)],
    ids=["one-short", "just-enough", "idle"],
)
def test_service_rate_needs_enough_requests(requests: int, measured: bool) -> None:
    traffic = pool_traffic([replica(requests, compute_us=requests * 1000)])
    assert (traffic.service_rate_rps is not None) is measured


@pytest.mark.parametrize(
    "dropped",
    ["success", "executions", "queue_us", "compute_us", "failure"],
)
def test_a_counter_that_went_down_measures_nothing(dropped: str) -> None:
    before = counters(
        success=100, failure=5, inferences=100, executions=50, queue_us=9000, compute_us=80000
    )
    after = dataclasses.replace(before, **{dropped: 0.0})
    assert interval(before, after, seconds=2.0) is None


# --- a pool of replicas -------------------------------------------------------------------


def test_pool_rates_add_up_and_queue_time_weighs_every_request_once() -> None:
    busy = replica(90, queue_us=90 * 4000, failures=3, seconds=2.0)
    quiet = replica(10, queue_us=10 * 1000, seconds=2.0)
    traffic = pool_traffic([busy, quiet])
    assert traffic.served_rps == pytest.approx((93 + 10) / 2)
    assert traffic.failed_rps == pytest.approx(1.5)
    assert traffic.queue_time_ms == pytest.approx((90 * 4 + 10 * 1) / 100)


@pytest.mark.parametrize(
    ("replicas", "p99_ms"),
    [
        ([replica(50, queue_us=50 * 2000), replica(50, queue_us=50 * 6000)], 6.0),
        (
            [replica(50, queue_us=50 * 2000, queue_p99_us=9000), replica(50, queue_p99_us=3000)],
            9.0,
        ),
        ([replica(50, queue_us=50 * 2000), replica(0, queue_p99_us=50_000)], 2.0),
        ([replica(0), replica(0)], 0.0),
    ],
    ids=["worst-average-without-summaries", "worst-summary-p99", "idle-replica-ignored", "idle"],
)
def test_p99_queue_time_is_the_worst_serving_replicas(
    replicas: list[ReplicaInterval], p99_ms: float
) -> None:
    assert pool_traffic(replicas).queue_time_p99_ms == pytest.approx(p99_ms)


def test_an_idle_pool_queues_nobody() -> None:
    traffic = pool_traffic([replica(0, seconds=2.0)])
    assert (traffic.served_rps, traffic.queue_time_ms, traffic.service_rate_rps) == (0.0, 0.0, None)


def test_busy_share_is_busy_time_over_the_instances_time() -> None:
    """Two replicas of 2 instances for 2 s have 8 instance-seconds; 1.5 s and 0.5 s of
    compute (unbatched) fill a quarter of it, what the ledger counts as used."""
    busy = replica(100, compute_us=1.5e6, seconds=2.0)
    quiet = replica(50, compute_us=0.5e6, seconds=2.0)
    assert pool_traffic([busy, quiet], model_instances=2).busy_share == pytest.approx(0.25)
    assert pool_traffic([replica(0, seconds=2.0)]).busy_share == 0.0
