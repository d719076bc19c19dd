"""Demand one cold start ahead, so burst capacity is ready before the SLO breaks."""

from __future__ import annotations

from spillover.controller.policy.state import DemandForecast

TREND_SMOOTHING = 0.2
"""EWMA weight of the newest trend sample: lower than the level's, because a slope
from two noisy samples is noisier than either sample."""

MAX_RISE = 1.0
"""The forecast rise is at most this fraction of current demand: a step (a flash
sale opening) reads as a steep slope, and doubling is already generous headroom."""


def update(
    forecast: DemandForecast | None, demand_rps: float, now: float, smoothing: float
) -> DemandForecast:
    """Fold one demand sample into the level and trend (Holt's linear method)."""
    if forecast is None or now <= forecast.at:
        return DemandForecast(demand_rps, 0.0, now)
    elapsed = now - forecast.at
    projected = forecast.level_rps + forecast.trend_rps_per_s * elapsed
    level = smoothing * demand_rps + (1 - smoothing) * projected
    slope = (level - forecast.level_rps) / elapsed
    trend = TREND_SMOOTHING * slope + (1 - TREND_SMOOTHING) * forecast.trend_rps_per_s
    return DemandForecast(max(level, 0.0), trend, now)


def planned_demand(forecast: DemandForecast, demand_rps: float, horizon_s: float) -> float:
    """Demand to size for: never below what arrives now, plus the rise expected over
    the horizon. A falling trend does not shrink it: shrinking waits for the cooldown."""
    base = max(demand_rps, forecast.level_rps)
    rise = min(max(forecast.trend_rps_per_s, 0.0) * horizon_s, MAX_RISE * base)
    return base + rise
