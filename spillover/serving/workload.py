"""Realistic recommendation requests: Zipf-popular users, histories of varied length."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from spillover.model.contract import HISTORY_WINDOW
from spillover.serving.batching import pad_histories


@dataclass(frozen=True)
class Request:
    """One single-user request, ready to send."""

    user_ids: np.ndarray
    """INT64 [1, 1]."""
    histories: np.ndarray
    """INT64 [1, HISTORY_WINDOW], padded."""


def sample_requests(
    n_users: int,
    n_items: int,
    count: int,
    seed: int = 0,
    item_category: Sequence[int] | None = None,
    zipf_exponent: float = 1.1,
) -> list[Request]:
    """`count` requests: a few users ask often, histories from empty to the full window.

    With `item_category`, each history stays within two categories, like a real
    browsing session; without it, history items are drawn uniformly.
    """
    rng = np.random.default_rng(seed)
    users = (rng.zipf(zipf_exponent, size=count) - 1) % n_users
    lengths = rng.integers(0, HISTORY_WINDOW + 1, size=count)
    by_category = _items_by_category(item_category) if item_category is not None else None
    requests = []
    for user, length in zip(users, lengths, strict=True):
        if by_category is None:
            history = rng.integers(0, n_items, size=length)
        else:
            browsed = rng.choice(len(by_category), size=min(2, len(by_category)), replace=False)
            history = rng.choice(np.concatenate([by_category[c] for c in browsed]), size=length)
        requests.append(
            Request(np.array([[user]], dtype=np.int64), pad_histories([history.tolist()]))
        )
    return requests


def _items_by_category(item_category: Sequence[int]) -> list[np.ndarray]:
    categories = np.asarray(item_category)
    return [np.flatnonzero(categories == c) for c in range(int(categories.max()) + 1)]
