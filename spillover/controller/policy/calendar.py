"""Known events: capacity for a peak on the calendar is started before it begins.

An EKS GPU node takes minutes; a forecast sees a midnight spike only once it has
begun. So from one burst cold start plus a margin before a known event's start, the
demand planned for is at least the current level times the event's expected peak
multiple. From the start on the forecast takes over, and the scale-down cooldown keeps
what was started while the real peak is measured.
"""

from __future__ import annotations

from spillover.config import SpilloverConfig


def lead_seconds(config: SpilloverConfig) -> float:
    """How long before an event capacity is started: the longest burst cold start plus
    the configured margin."""
    cold_starts = [pool.cold_start_seconds for pool in config.pools if pool.role == "burst"]
    return max(cold_starts, default=0.0) + config.policy.prewarm_margin_seconds


def prewarm(
    config: SpilloverConfig, level_rps: float, planned_rps: float, now: float
) -> tuple[float, str | None]:
    """The demand to plan for now, and why when a known event raised it."""
    lead = lead_seconds(config)
    for event in config.policy.known_events:
        start = event.start.timestamp()
        if start - lead <= now < start:
            expected = level_rps * event.peak_multiple
            if expected > planned_rps:
                return expected, (
                    f"known event {event.name} in {start - now:.0f} s: pre-warming for "
                    f"{event.peak_multiple:g}x the current {level_rps:.0f} rps"
                )
    return planned_rps, None
