"""Realistic recommendation requests: Zipf-popular users, histories of varied length."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spillover.model.contract import HISTORY_WINDOW
from spillover.serving.client import pad_histories


@dataclass(frozen=True)
class Request:
    """One single-user request, ready to send."""

    user_ids: np.ndarray
    """INT64 [1, 1]."""
    histories: np.ndarray
    """INT64 [1, HISTORY_WINDOW], padded."""


def sample_requests(
    n_users: int, n_items: int, count: int, seed: int = 0, zipf_exponent: float = 1.1
) -> list[Request]:
    """`count` requests: a few users ask often, histories from empty to the full window."""
    rng = np.random.default_rng(seed)
    users = (rng.zipf(zipf_exponent + 0.0001, size=count) - 1) % n_users
    lengths = rng.integers(0, HISTORY_WINDOW + 1, size=count)
    requests = []
    for user, length in zip(users, lengths):
        history = rng.integers(0, n_items, size=length)
        requests.append(
            Request(np.array([[user]], dtype=np.int64), pad_histories([history.tolist()]))
        )
    return requests
