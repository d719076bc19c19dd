"""Merge the requests Triton hands the Python backend into one model call, and split it back.

Each request may carry its own batch and its own history length. The model reads
the last HISTORY_WINDOW columns and ignores PAD_ITEM, so each history is kept at
the right end and padded at the front: every request sees exactly the columns it
would see alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from spillover.model.contract import HISTORY_WINDOW, PAD_ITEM


def merge_requests(
    user_ids: Sequence[np.ndarray], histories: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Stack per-request [b, 1] user ids and [b, L] histories into one padded batch."""
    sizes = [len(users) for users in user_ids]
    longest = max((history.shape[1] for history in histories), default=0)
    padded = np.full((sum(sizes), longest), PAD_ITEM, dtype=np.int64)
    row = 0
    for history in histories:
        padded[row : row + len(history), longest - history.shape[1] :] = history
        row += len(history)
    return np.concatenate(user_ids).astype(np.int64, copy=False), padded, sizes


def split_outputs(output: np.ndarray, sizes: Sequence[int]) -> list[np.ndarray]:
    """Cut a batched output back into one array per request, in request order."""
    return np.split(output, np.cumsum(sizes)[:-1])


def pad_histories(histories: Sequence[Sequence[int]], width: int = HISTORY_WINDOW) -> np.ndarray:
    """[batch, width] INT64: each history's most recent `width` items, padded at the front.

    Equal widths let Triton's dynamic batcher put requests in one batch.
    """
    padded = np.full((len(histories), width), PAD_ITEM, dtype=np.int64)
    for row, history in enumerate(histories):
        recent = list(history)[-width:]
        if recent:
            padded[row, width - len(recent) :] = recent
    return padded
