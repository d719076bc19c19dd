"""Triton's Prometheus counters turned into rates, queue times and a measured service rate.

Pure functions over the text a replica's ``/metrics`` answers: no I/O, no clock. The
observer scrapes, keeps the previous scrape of each replica, and asks here what
happened in between.

Every counter Triton exports per model is cumulative since the server started, so one
scrape says nothing about now; the difference between two scrapes of the same server
does. A counter that went down means the server (or the model) restarted: that pair
of scrapes measures nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from spillover.model.contract import MODEL_NAME

MIN_REQUESTS_TO_MEASURE = 20
"""Requests an interval needs before busy time says anything about capacity: below it,
one slow first request (model warm-up) or one lucky batch dominates the estimate."""

QUEUE_P99 = "0.99"
"""The quantile of ``nv_inference_queue_summary_us`` read as the p99 queue time."""

SUCCESS = "nv_inference_request_success"
FAILURE = "nv_inference_request_failure"
INFERENCES = "nv_inference_count"
EXECUTIONS = "nv_inference_exec_count"
REQUEST_US = "nv_inference_request_duration_us"
QUEUE_US = "nv_inference_queue_duration_us"
COMPUTE_US = (
    "nv_inference_compute_input_duration_us",
    "nv_inference_compute_infer_duration_us",
    "nv_inference_compute_output_duration_us",
)
QUEUE_SUMMARY_US = "nv_inference_queue_summary_us"
"""Only with ``tritonserver --metrics-config=summary_latencies=true``."""

COUNTERS = (SUCCESS, FAILURE, INFERENCES, EXECUTIONS, REQUEST_US, QUEUE_US, *COMPUTE_US)


@dataclass(frozen=True)
class TritonCounters:
    """One model's cumulative counters on one Triton server, summed over model versions."""

    success: float
    """Requests answered successfully (a request carrying a batch counts once)."""
    failure: float
    """Requests that failed, every reason (rejected, backend error, cancelled, other)."""
    inferences: float
    """Batch items inferred: a request with 8 users counts 8."""
    executions: float
    """Model executions: the dynamic batcher merges requests into one execution."""
    request_us: float
    """End-to-end time inside Triton, summed per request."""
    queue_us: float
    """Time waiting in the scheduler's queue, summed per request."""
    compute_us: float
    """Input + infer + output time in the backend, summed per request: every request of
    a batch adds the whole batch's duration."""
    queue_p99_us: float | None = None
    """p99 queue time over Triton's sliding summary window (about the last minute);
    None when summaries are off or nothing was observed in the window."""


def parse_counters(text: str, model: str = MODEL_NAME) -> TritonCounters:
    """The counters of `model` in a Prometheus text page; all 0 when the model has none yet.

    Raises ValueError when the text is not Prometheus exposition format.
    """
    totals = dict.fromkeys(COUNTERS, 0.0)
    p99: float | None = None
    for family in text_string_to_metric_families(text):
        if family.name in totals:
            totals[family.name] += _sum_for_model(family.samples, family.name, model)
        elif family.name == QUEUE_SUMMARY_US:
            p99 = _worst_quantile(family.samples, model)
    return TritonCounters(
        success=totals[SUCCESS],
        failure=totals[FAILURE],
        inferences=totals[INFERENCES],
        executions=totals[EXECUTIONS],
        request_us=totals[REQUEST_US],
        queue_us=totals[QUEUE_US],
        compute_us=sum(totals[name] for name in COMPUTE_US),
        queue_p99_us=p99,
    )


def _sum_for_model(samples: Sequence[Sample], family: str, model: str) -> float:
    # The parser names counter samples `<family>_total`; Triton's text has no suffix.
    names = (family, f"{family}_total")
    return sum(s.value for s in samples if s.name in names and s.labels.get("model") == model)


def _worst_quantile(samples: Sequence[Sample], model: str) -> float | None:
    """The p99 across versions of the model; NaN (no observation in the window) is None."""
    values = [
        s.value
        for s in samples
        if s.name == QUEUE_SUMMARY_US
        and s.labels.get("model") == model
        and s.labels.get("quantile") == QUEUE_P99
        and not math.isnan(s.value)
    ]
    return max(values, default=None)


@dataclass(frozen=True)
class ReplicaInterval:
    """What one replica did between two scrapes of the same running server."""

    seconds: float
    requests: float
    """Successful requests: Triton times queue and compute for these only."""
    failures: float
    executions: float
    queue_us: float
    compute_us: float
    queue_p99_us: float | None
    """From the later scrape's summary (a sliding window, not exactly this interval)."""

    @property
    def served_rps(self) -> float:
        """Requests answered per second, failed ones included (as the gateway counts)."""
        return (self.requests + self.failures) / self.seconds

    @property
    def failed_rps(self) -> float:
        return self.failures / self.seconds

    @property
    def busy_seconds(self) -> float:
        """Seconds the model instances spent executing, summed over instances.

        Triton adds a batch's compute time once per request in it, so the sum over
        requests overstates busy time by the average number of requests per
        execution (Δrequests / Δexecutions). Dividing it out is exact when batches
        are alike and an approximation when their sizes and durations vary.
        """
        if self.requests <= 0 or self.executions <= 0:
            return 0.0
        return self.compute_us * self.executions / self.requests / 1e6


def interval(
    previous: TritonCounters, current: TritonCounters, seconds: float
) -> ReplicaInterval | None:
    """The difference of two scrapes `seconds` apart; None when it measures nothing.

    A counter that went down means Triton (or the model) restarted in between: the
    caller keeps `current` as the new starting point instead of reporting a negative
    or made-up rate.
    """
    if seconds <= 0:
        return None
    deltas = {
        name: getattr(current, name) - getattr(previous, name)
        for name in ("success", "failure", "executions", "queue_us", "compute_us", "inferences")
    }
    if any(delta < 0 for delta in deltas.values()):
        return None
    return ReplicaInterval(
        seconds=seconds,
        requests=deltas["success"],
        failures=deltas["failure"],
        executions=deltas["executions"],
        queue_us=deltas["queue_us"],
        compute_us=deltas["compute_us"],
        queue_p99_us=current.queue_p99_us,
    )


@dataclass(frozen=True)
class PoolTraffic:
    """What a pool's replicas did over the last interval, from Triton's own counters."""

    served_rps: float
    failed_rps: float
    queue_time_ms: float
    """Average queue time over the pool's requests; 0.0 when none came (nobody waited)."""
    queue_time_p99_ms: float
    """The worst replica's p99 from Triton's summary where exposed, else its average
    over the interval; only replicas that served requests in the interval count."""
    service_rate_rps: float | None
    """Requests per second one replica serves when fully busy; None below
    MIN_REQUESTS_TO_MEASURE requests. Measured at the batch sizes the interval's load
    produced: light load makes small batches, so it errs low, the safe side."""
    busy_share: float = 0.0
    """Share of the measured replicas' instance-time spent computing (0..1): the used
    part of what they cost."""


def pool_traffic(intervals: Sequence[ReplicaInterval], model_instances: int = 1) -> PoolTraffic:
    """Sum replicas' intervals into the pool's rates; queue times weigh each request once.

    model_instances: Triton model instances per replica. Busy time sums over
    instances, so requests per busy second is one instance's rate; a replica runs
    its instances side by side (one per GPU stream, or per core here).
    """
    requests = sum(replica.requests for replica in intervals)
    # An instance is busy at most the whole interval. Mixed batch sizes make the
    # per-request estimate overshoot that on a saturated replica (a large batch's
    # time counted by each of its many requests): capped, saturation reads as
    # capacity instead of far below it.
    busy = sum(
        min(replica.busy_seconds, replica.seconds * model_instances) for replica in intervals
    )
    capacity = instance_seconds(intervals, model_instances)
    serving = [replica for replica in intervals if replica.requests > 0]
    service_rate = None
    if requests >= MIN_REQUESTS_TO_MEASURE and busy > 0:
        service_rate = requests / busy * model_instances
    return PoolTraffic(
        served_rps=sum(replica.served_rps for replica in intervals),
        failed_rps=sum(replica.failed_rps for replica in intervals),
        queue_time_ms=_ms(sum(r.queue_us for r in serving) / requests) if requests else 0.0,
        queue_time_p99_ms=max((_ms(_p99_us(r)) for r in serving), default=0.0),
        service_rate_rps=service_rate,
        busy_share=busy / capacity
        if (capacity := instance_seconds(intervals, model_instances))
        else 0.0,
    )


def instance_seconds(intervals: Sequence[ReplicaInterval], model_instances: int) -> float:
    """The instance-time the replicas had over their intervals: what busy time fills."""
    return sum(replica.seconds * model_instances for replica in intervals)


def _p99_us(replica: ReplicaInterval) -> float:
    if replica.queue_p99_us is not None:
        return replica.queue_p99_us
    return replica.queue_us / replica.requests


def _ms(microseconds: float) -> float:
    return microseconds / 1000.0
