"""Demand traces at 1 s resolution: the packaged shop week, or a CSV replayed.

A trace is an array of requests per second, one per simulated second from its start;
it has an end, so every run is bounded.
"""

from __future__ import annotations

import math
import random
from array import array
from dataclasses import dataclass
from pathlib import Path

from spillover.errors import SpilloverError

DAY = 86_400
WEEK_START = 1_794_700_800.0
"""2026-11-08 00:00 UTC, a Sunday: the packaged week runs to 11-15, with 11.11 midnight
three days in. The shop's clock is taken as UTC."""
SINGLES_DAY_AT = 3 * DAY
DEFAULT_PEAK_RPS = 20_000.0
"""An ordinary evening's peak; 11.11 midnight reaches about ten times the level it hits."""


class TraceError(SpilloverError):
    """A trace file cannot be replayed; the message names the line."""


@dataclass(frozen=True)
class Trace:
    name: str
    start: float
    """Epoch seconds of its first second."""
    rps: array
    """Requests per second, one per second."""
    events: tuple[tuple[float, str], ...] = ()
    """(seconds from start, label) of the shapes worth marking on plots."""
    known: tuple[tuple[float, str, float, float], ...] = ()
    """Peaks a shop has on its calendar: (seconds from start, name, expected multiple,
    duration in seconds); the `spillover + calendar` run gives them to the policy."""

    @property
    def seconds(self) -> int:
        return len(self.rps)


def diurnal(second_of_day: float) -> float:
    """A shop's day relative to its evening peak: trough at 04:00, lunch bump, peak 21:00."""
    hour = second_of_day / 3600
    night = 0.12
    day = 0.55 * math.exp(-(((hour - 12.5) / 2.5) ** 2))
    evening = 0.88 * math.exp(-(((hour - 21.0) / 2.6) ** 2))
    late = 0.88 * math.exp(-(((hour + 3.0) / 2.6) ** 2))  # yesterday's evening tail
    return min(1.0, night + day + evening + late)


def singles_day(seconds_after: float) -> float:
    """The 11.11 multiplier: ×10 within the first minute, decaying over hours."""
    if seconds_after < 0:
        return 1.0
    if seconds_after < 60:
        return 1 + 9 * seconds_after / 60
    return 1 + 9 * math.exp(-(seconds_after - 60) / (2.5 * 3600))


def shop_week(
    peak_rps: float = DEFAULT_PEAK_RPS, days: float = 7, seed: int = 11, from_day: float = 0
) -> Trace:
    """The packaged week: diurnal cycle, weekend lift, two evening promotions, 11.11;
    `days` of it from `from_day` (11.11 midnight is at day 3)."""
    rng = random.Random(seed)
    first = int(from_day * DAY)
    seconds = int(days * DAY)
    promotions = [(1 * DAY + 20 * 3600, 2 * 3600, 1.5), (5 * DAY + 19 * 3600, 3 * 3600, 1.4)]
    rps = array("f", bytes(4 * seconds))
    noise = 0.0
    for index in range(seconds):
        second = first + index
        day, second_of_day = divmod(second, DAY)
        level = diurnal(second_of_day)
        if day % 7 in (0, 6):  # Sunday, Saturday
            level *= 1.2
        for at, duration, lift in promotions:
            if at <= second < at + duration:
                level *= lift
        level *= singles_day(second - SINGLES_DAY_AT)
        noise = 0.9 * noise + 0.1 * rng.gauss(0.0, 0.05)  # correlated over ~10 s
        rps[index] = max(0.0, peak_rps * level * (1 + noise))
    events = (
        (promotions[0][0] - first, "promotion"),
        (float(SINGLES_DAY_AT - first), "11.11 midnight"),
        (promotions[1][0] - first, "promotion"),
    )
    known = ((float(SINGLES_DAY_AT - first), "11.11", 10.0, 4 * 3600.0),)
    name = (
        "shop week"
        if first == 0 and days == 7
        else f"shop week, days {from_day:g}-{from_day + days:g}"
    )
    return Trace(
        name,
        WEEK_START + first,
        rps,
        tuple(e for e in events if 0 <= e[0] < seconds),
        tuple(k for k in known if 0 <= k[0] < seconds),
    )


def flat(rps: float, seconds: int, start: float = WEEK_START) -> Trace:
    return Trace(f"flat {rps:g} rps", start, array("f", [rps] * seconds))


def steps(levels: list[tuple[int, float]], start: float = WEEK_START) -> Trace:
    """Piecewise constant: (seconds, rps) pieces in order."""
    values = array("f")
    for seconds, rps in levels:
        values.extend([rps] * seconds)
    return Trace("steps", start, values)


def read_csv(path: Path, start: float = WEEK_START) -> Trace:
    """`second,rps` lines (a header line is allowed); seconds ascending from 0. Gaps hold
    the previous rate. A bad line is named with its number, and nothing runs."""
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except OSError as error:
        raise TraceError(f"cannot read {path}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise TraceError(f"{path} is not UTF-8 text") from None
    points: list[tuple[int, float]] = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if number == 1 and not text[0].isdigit():
            continue  # a header
        parts = [part.strip() for part in text.split(",")]
        if len(parts) != 2:
            raise TraceError(f"{path}:{number}: expected `second,rps`, got {text!r}")
        try:
            second, rate = int(parts[0]), float(parts[1])
        except ValueError:
            raise TraceError(
                f"{path}:{number}: second must be an integer and rps a number, got {text!r}"
            ) from None
        if not math.isfinite(rate) or rate < 0:
            raise TraceError(f"{path}:{number}: rps must be a finite number >= 0, got {parts[1]}")
        if second < 0 or (points and second <= points[-1][0]):
            raise TraceError(
                f"{path}:{number}: seconds must start at 0 or more and ascend, got {second}"
            )
        points.append((second, rate))
    if not points:
        raise TraceError(f"{path}: no `second,rps` lines")
    values = array("f", bytes(4 * (points[-1][0] + 1)))
    for (second, rate), following in zip(
        points, points[1:] + [(points[-1][0] + 1, 0.0)], strict=True
    ):
        for index in range(second, following[0]):
            values[index] = rate
    return Trace(Path(path).name, start, values)
