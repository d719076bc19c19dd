"""Load shapes as data: a trace is a table of (seconds, rps) points, linear between them.

Every shape the load generator offers (constant, ramp, a compressed day, a flash
sale, a replayed recording) is such a table, so one integral and one arrival
sampler serve them all, and a report can print exactly what was asked for.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np

from spillover.errors import SpilloverError

FLASH_SALE_STEP_S = 0.5
"""How finely a flash sale's exponential decay is sampled into straight segments."""
ARRIVAL_PIECE = 1_000_000
"""Candidate arrivals drawn at once: bounds the memory of drawing a long trace's plan."""

# A shop's day, hour by hour (0 h to 24 h), relative to the evening peak: a night
# trough around 3-4 h, a morning climb, a lunch bump, the after-work peak at 20 h.
DIURNAL_SHAPE = (
    0.45, 0.32, 0.24, 0.20, 0.20, 0.24, 0.33, 0.45, 0.56, 0.63, 0.68, 0.72, 0.78,
    0.75, 0.70, 0.70, 0.72, 0.76, 0.83, 0.92, 1.00, 0.97, 0.82, 0.62, 0.45,
)  # fmt: skip


class TraceError(SpilloverError):
    """A trace cannot be built; the message names the field or CSV line and why."""


@dataclass(frozen=True)
class Trace:
    """Requests per second over time, linear between points; 0 outside them."""

    name: str
    points: tuple[tuple[float, float], ...]
    """(seconds, rps): the first at 0 s, seconds strictly increasing, rps finite and >= 0."""

    def __post_init__(self) -> None:
        points = tuple((float(s), float(r)) for s, r in self.points)
        object.__setattr__(self, "points", points)
        if len(points) < 2:
            raise TraceError(f"trace {self.name}: needs at least two points (a start and an end)")
        for index, (seconds, rps) in enumerate(points):
            where = f"trace {self.name}: point {index + 1}"
            if not math.isfinite(seconds):
                raise TraceError(f"{where}: seconds must be a finite number, got {seconds}")
            if not math.isfinite(rps) or rps < 0:
                raise TraceError(f"{where}: rps must be a finite number >= 0, got {rps}")
            if index == 0 and seconds != 0:
                raise TraceError(f"{where}: the first point must be at 0 seconds, got {seconds}")
            if index > 0 and seconds <= points[index - 1][0]:
                raise TraceError(
                    f"{where}: seconds must increase, got {seconds} after {points[index - 1][0]}"
                )

    @property
    def duration_s(self) -> float:
        return self.points[-1][0]

    @property
    def peak_rps(self) -> float:
        return max(rps for _, rps in self.points)

    @property
    def mean_rps(self) -> float:
        return self.expected_requests() / self.duration_s

    def rate_at(self, t: float) -> float:
        if not 0.0 <= t <= self.duration_s:
            return 0.0
        return float(np.interp(t, self._seconds, self._rates))

    def expected_requests(self, since_s: float = 0.0, until_s: float | None = None) -> float:
        """The integral of the rate over [since_s, until_s]: requests a Poisson source
        sends there on average."""
        start = max(0.0, since_s)
        end = self.duration_s if until_s is None else min(until_s, self.duration_s)
        if end <= start:
            return 0.0
        seconds = self._seconds
        inside = seconds[(seconds > start) & (seconds < end)]
        xs = np.concatenate([[start], inside, [end]])
        ys = np.interp(xs, seconds, self._rates)
        return float(np.sum((ys[1:] + ys[:-1]) * np.diff(xs)) / 2.0)

    def clipped(self, duration_s: float) -> Trace:
        """The same trace cut at duration_s (a shorter look at a long recording)."""
        _positive("duration_s", duration_s)
        if duration_s >= self.duration_s:
            return self
        kept = [point for point in self.points if point[0] < duration_s]
        return Trace(self.name, (*kept, (duration_s, self.rate_at(duration_s))))

    @property
    def _seconds(self) -> np.ndarray:
        return np.array([seconds for seconds, _ in self.points])

    @property
    def _rates(self) -> np.ndarray:
        return np.array([rps for _, rps in self.points])


def constant(rps: float, duration_s: float) -> Trace:
    _rate("rps", rps)
    _positive("duration_s", duration_s)
    return Trace("constant", ((0.0, rps), (duration_s, rps)))


def ramp(start_rps: float, end_rps: float, duration_s: float) -> Trace:
    _rate("start_rps", start_rps)
    _rate("end_rps", end_rps)
    _positive("duration_s", duration_s)
    return Trace("ramp", ((0.0, start_rps), (duration_s, end_rps)))


def diurnal(peak_rps: float, duration_s: float, trough_share: float = 0.2) -> Trace:
    """A shop's 24 hours compressed into duration_s: night trough at trough_share of
    the peak, a morning climb, a lunch bump, the evening peak at 20 h."""
    _rate("peak_rps", peak_rps)
    _positive("duration_s", duration_s)
    if not 0.0 <= trough_share <= 1.0:
        raise TraceError(f"trough_share must be between 0 and 1, got {trough_share}")
    low = min(DIURNAL_SHAPE)
    hour = duration_s / (len(DIURNAL_SHAPE) - 1)
    return Trace(
        "diurnal",
        tuple(
            (i * hour, peak_rps * (trough_share + (1 - trough_share) * (s - low) / (1 - low)))
            for i, s in enumerate(DIURNAL_SHAPE)
        ),
    )


def flash_sale(
    base_rps: float,
    peak_rps: float,
    duration_s: float,
    start_s: float,
    rise_s: float = 2.0,
    hold_s: float = 5.0,
    decay_s: float = 10.0,
) -> Trace:
    """11.11 at midnight: base load until start_s, up to peak_rps within rise_s, held
    for hold_s, then an exponential decay (time constant decay_s) back towards base."""
    _rate("base_rps", base_rps)
    _rate("peak_rps", peak_rps)
    _positive("duration_s", duration_s)
    _positive("rise_s", rise_s)
    _positive("decay_s", decay_s)
    if hold_s < 0 or not math.isfinite(hold_s):
        raise TraceError(f"hold_s must be 0 or more, got {hold_s}")
    if not 0 <= start_s < duration_s:
        raise TraceError(
            f"start_s must be at least 0 and before duration_s ({duration_s}), got {start_s}"
        )
    points = [(0.0, base_rps)]
    if start_s > 0:
        points.append((start_s, base_rps))
    peak_at = start_s + rise_s
    points.append((peak_at, peak_rps))
    decay_from = peak_at + hold_s
    if hold_s > 0:
        points.append((decay_from, peak_rps))
    steps = math.ceil(max(0.0, duration_s - decay_from) / FLASH_SALE_STEP_S)
    for step in range(1, steps + 1):
        elapsed = step * FLASH_SALE_STEP_S
        rps = base_rps + (peak_rps - base_rps) * math.exp(-elapsed / decay_s)
        points.append((decay_from + elapsed, rps))
    return Trace("flash-sale", tuple(points)).clipped(duration_s)


def replay(path: Path | str) -> Trace:
    """A recorded load from a CSV of `seconds,rps` lines (a header line is optional)."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise TraceError(f"{path}: cannot read the trace: {error}") from error
    points = list(_parse_csv(path, text.splitlines()))
    if len(points) < 2:
        raise TraceError(
            f"{path}: needs at least two `seconds,rps` lines (a start at 0 and an end), "
            f"found {len(points)}"
        )
    return Trace(path.stem, tuple(points))


def _parse_csv(path: Path, lines: Sequence[str]) -> Iterable[tuple[float, float]]:
    previous: float | None = None
    first_row = True
    for number, row in enumerate(csv.reader(lines), start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        is_header, first_row = first_row, False
        where = f"{path}: line {number}"
        if len(cells) != 2:
            raise TraceError(f"{where}: expected 2 fields `seconds,rps`, got {len(cells)}")
        try:
            seconds, rps = float(cells[0]), float(cells[1])
        except ValueError:
            if is_header:
                continue
            raise TraceError(
                f"{where}: expected `seconds,rps` numbers, got {','.join(row)!r}"
            ) from None
        if not math.isfinite(seconds) or not math.isfinite(rps):
            raise TraceError(f"{where}: seconds and rps must be finite, got {','.join(row)!r}")
        if rps < 0:
            raise TraceError(f"{where}: rps must be 0 or more, got {rps}")
        if previous is None and seconds != 0:
            raise TraceError(f"{where}: the first point must be at 0 seconds, got {seconds}")
        if previous is not None and seconds <= previous:
            raise TraceError(f"{where}: seconds must increase, got {seconds} after {previous}")
        previous = seconds
        yield seconds, rps


@dataclass(frozen=True)
class Arrivals:
    """A trace's plan for one seed: the intended send offsets kept, and how many the
    whole trace holds (more than kept when max_requests cut the plan)."""

    offsets: np.ndarray
    """Sorted intended send offsets (s) from t = 0, at most max_requests of them."""
    total: int
    """Requests the whole trace plans for this seed."""


def draw_arrivals(trace: Trace, seed: int = 0, max_requests: int | None = None) -> Arrivals:
    """A non-homogeneous Poisson process around the trace's rate, by thinning each
    segment at its highest rate; the first max_requests offsets are kept and the rest
    only counted.

    Drawn in pieces of at most ARRIVAL_PIECE candidates, so a long trace costs memory
    for what is kept, not for the whole plan (a segment that fits in one piece draws
    exactly as it would whole).
    """
    if max_requests is not None and max_requests < 0:
        raise TraceError(f"max_requests must be 0 or more, got {max_requests}")
    rng = np.random.default_rng(seed)
    kept: list[np.ndarray] = []
    room = math.inf if max_requests is None else max_requests
    total = 0
    for t0, t1, r0, r1 in _pieces(trace):
        ceiling = max(r0, r1)
        count = rng.poisson(ceiling * (t1 - t0))
        times = rng.uniform(t0, t1, size=count)
        rates = r0 + (r1 - r0) * (times - t0) / (t1 - t0)
        chosen = np.sort(times[rng.uniform(0.0, ceiling, size=count) < rates])
        total += len(chosen)
        if room > 0:
            kept.append(chosen[: int(min(room, len(chosen)))])
            room -= len(kept[-1])
    offsets = np.concatenate(kept) if kept else np.zeros(0)
    return Arrivals(offsets, total)


def arrivals(trace: Trace, seed: int = 0, max_requests: int | None = None) -> np.ndarray:
    """Sorted intended send offsets (s) of the trace's plan for seed; at most max_requests."""
    return draw_arrivals(trace, seed, max_requests).offsets


def _pieces(trace: Trace) -> Iterable[tuple[float, float, float, float]]:
    """(t0, t1, rate at t0, rate at t1) of each part of each segment that has load,
    split so that no part expects more than ARRIVAL_PIECE candidates."""
    for (t0, r0), (t1, r1) in pairwise(trace.points):
        ceiling = max(r0, r1)
        if ceiling <= 0:
            continue
        parts = max(1, math.ceil(ceiling * (t1 - t0) / ARRIVAL_PIECE))
        bounds = np.linspace(t0, t1, parts + 1)
        rates = r0 + (r1 - r0) * (bounds - t0) / (t1 - t0)
        for k in range(parts):
            yield float(bounds[k]), float(bounds[k + 1]), float(rates[k]), float(rates[k + 1])


def _rate(field: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise TraceError(f"{field} must be a finite number >= 0, got {value}")


def _positive(field: str, value: float) -> None:
    if not math.isfinite(value) or value <= 0:
        raise TraceError(f"{field} must be above 0, got {value}")
