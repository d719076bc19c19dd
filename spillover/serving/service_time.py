"""How long a local replica holds a batch, so it serves like the GPU replica it stands for.

A CPU Triton replica here answers ~1,500 req/s; the GPU replica of its pool is declared
to serve `capacity_rps`. The model: each batch of n rows occupies the replica for
n / capacity_rps seconds (per model instance: a replica with k instances runs k batches
side by side, each at capacity_rps / k). The cost is per row, so packing many users into
one request cannot beat the cap, and a replica offered more than its capacity keeps a
queue, whose time Triton reports as queue time.

The Python backend's hand-off (the stub copying each row's tensors in and its responses
out through shared memory) happens outside `execute` yet inside the replica's time, so
its per-row share is counted as part of the batch's service time rather than added on
top, and `execute` sleeps whatever remains: a batch takes max(its own compute,
n / capacity_rps). Calibrated with `spillover bench capacity` (300 req/s declared): a
per-batch fixed hand-off term (an earlier estimate said ~2 ms) made Triton's busy time
read 2x the declared capacity at light load, because Triton's compute counters do not
see it; without it, served and learned capacity are within 7% of declared at 0.5x, 1x
and 2x. What fixed cost remains per batch stays on top, like a GPU's launch overhead,
and amortizes as batches grow under saturation.

Pure: no clock and no sleeping here; model.py measures and sleeps.
"""

from __future__ import annotations

from collections.abc import Mapping

from spillover.model.contract import CAPACITY_VARIABLE

HANDOFF_PER_ROW_S = 0.0002
"""Python-backend hand-off per row of a batch outside `execute`."""


def capacity_from_environment(environ: Mapping[str, str]) -> float | None:
    """The replica's capacity in requests/s from CAPACITY_VARIABLE; None when unset or empty.

    Raises ValueError naming the variable when it is not a positive number.
    """
    text = environ.get(CAPACITY_VARIABLE, "").strip()
    if not text:
        return None
    try:
        capacity = float(text)
    except ValueError:
        raise ValueError(f"{CAPACITY_VARIABLE}={text!r} is not a number of requests/s") from None
    if not capacity > 0 or capacity == float("inf"):
        raise ValueError(f"{CAPACITY_VARIABLE}={text!r} must be a positive, finite requests/s")
    return capacity


def batch_seconds(rows: int, capacity_rps: float, instances: int = 1) -> float:
    """Seconds a batch of `rows` holds one model instance at the replica's capacity."""
    return rows * instances / capacity_rps


def handoff_seconds(rows: int) -> float:
    """The Python backend's share of a batch's time spent outside `execute`."""
    return HANDOFF_PER_ROW_S * rows


def remaining_seconds(
    rows: int, elapsed_s: float, capacity_rps: float | None, instances: int = 1
) -> float:
    """How long `execute` still sleeps after `elapsed_s` of its own work; 0 when uncapped
    or when the batch already took at least its service time."""
    if capacity_rps is None or rows <= 0:
        return 0.0
    budget = batch_seconds(rows, capacity_rps, instances) - handoff_seconds(rows)
    return max(0.0, budget - elapsed_s)
