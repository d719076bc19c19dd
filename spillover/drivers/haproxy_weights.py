"""Pool traffic shares turned into HAProxy server weights (pure: no socket, no clock).

A pool's share is spread evenly over its ready servers, so a pool keeps its
share of traffic however many replicas it runs; unready servers get weight 0
so they take nothing the moment they come up, before the next weights apply.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence

from spillover.errors import PermanentError

MAX_WEIGHT = 256
"""HAProxy's largest server weight; the heaviest server gets it, for the finest resolution."""


class PoolSharesError(PermanentError, ValueError):
    """Shares the gateway cannot spread (an unknown pool, a bad number, all zero): fix
    the shares; trying them again will not help."""


def spread_pool_weights(
    shares: Mapping[str, float],
    servers_by_pool: Mapping[str, Sequence[str]],
    ready: Collection[str],
) -> dict[str, int]:
    """Per-server weights (0..256) that give each pool its share of traffic.

    ``shares`` are relative (80/20 and 4/1 mean the same); pools left out get 0.
    A pool with a positive share and a ready server never rounds to 0.
    """
    _validate_shares(shares, servers_by_pool)
    total = sum(shares.values())
    ideal: dict[str, float] = {}
    for pool, servers in servers_by_pool.items():
        ready_in_pool = [server for server in servers if server in ready]
        for server in ready_in_pool:
            ideal[server] = shares.get(pool, 0) / total / len(ready_in_pool)
    heaviest = max(ideal.values(), default=0.0)
    weights = {server: 0 for servers in servers_by_pool.values() for server in servers}
    for server, fraction in ideal.items():
        if fraction > 0:
            weights[server] = max(1, round(fraction / heaviest * MAX_WEIGHT))
    return weights


def _validate_shares(shares: Mapping[str, float], servers_by_pool: Mapping[str, object]) -> None:
    unknown = sorted(set(shares) - set(servers_by_pool))
    if unknown:
        raise PoolSharesError(
            f"unknown pool(s) {', '.join(unknown)}; the gateway's pools are "
            f"{', '.join(sorted(servers_by_pool))}"
        )
    bad = sorted(pool for pool, share in shares.items() if not _is_valid_share(share))
    if bad:
        listed = ", ".join(f"{pool}={shares[pool]!r}" for pool in bad)
        raise PoolSharesError(f"pool shares must be finite numbers >= 0, got {listed}")
    if not any(share > 0 for share in shares.values()):
        raise PoolSharesError("all pool shares are zero: at least one pool must get traffic")


def _is_valid_share(share: object) -> bool:
    if isinstance(share, bool) or not isinstance(share, (int, float)):
        return False
    return math.isfinite(share) and share >= 0
