"""The numpy reference forward pass: what every serving backend must compute.

The ONNX graph is tested against this function, and the offline evaluation runs
it, so the metrics describe exactly what clients are served.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from spillover.model.contract import HISTORY_WINDOW, TOP_K

Float32Array = npt.NDArray[np.float32]
Int64Array = npt.NDArray[np.int64]


@dataclass(frozen=True)
class ModelWeights:
    """The trained two-tower parameters (all float32)."""

    user_embeddings: Float32Array
    """Shape [n_users + 1, dim]; the last row is the out-of-vocabulary user."""

    history_embeddings: Float32Array
    """Shape [n_items, dim]; averaged over the history to form the user tower's second half."""

    item_embeddings: Float32Array
    """Shape [n_items, dim]; the item tower."""

    item_bias: Float32Array
    """Shape [n_items]; per-item score offset, which learns popularity."""

    @property
    def n_users(self) -> int:
        return int(self.user_embeddings.shape[0]) - 1

    @property
    def n_items(self) -> int:
        return int(self.item_embeddings.shape[0])

    @property
    def dim(self) -> int:
        return int(self.item_embeddings.shape[1])

    @property
    def oov_user_row(self) -> int:
        return self.n_users


def user_rows(weights: ModelWeights, user_ids: npt.ArrayLike) -> Int64Array:
    """Embedding row per user id; ids outside [0, n_users) get the out-of-vocabulary row."""
    ids = np.asarray(user_ids, dtype=np.int64).reshape(-1)
    known = (ids >= 0) & (ids < weights.n_users)
    return np.where(known, ids, weights.oov_user_row)


def history_mask(histories: Int64Array, n_items: int) -> tuple[Int64Array, npt.NDArray[np.bool_]]:
    """The last HISTORY_WINDOW columns, and which of them are real catalog items."""
    window = histories[:, -HISTORY_WINDOW:]
    valid = (window >= 0) & (window < n_items)
    return window, valid


def user_vectors(
    weights: ModelWeights, user_ids: npt.ArrayLike, histories: Int64Array
) -> Float32Array:
    """User tower: user embedding + mean of the valid recent history items' embeddings."""
    histories = np.asarray(histories, dtype=np.int64)
    rows = user_rows(weights, user_ids)
    if histories.ndim != 2 or histories.shape[0] != rows.shape[0]:
        raise ValueError(
            f"histories must be [batch, length] with batch = {rows.shape[0]} user ids, "
            f"got shape {histories.shape}"
        )
    window, valid = history_mask(histories, weights.n_items)
    # Clamp after masking so padding never indexes out of range, then zero it out.
    gathered = weights.history_embeddings[np.where(valid, window, 0)]
    mask = valid.astype(np.float32)[:, :, None]
    summed = (gathered * mask).sum(axis=1, dtype=np.float32)
    count = np.maximum(mask.sum(axis=1, dtype=np.float32), np.float32(1.0))
    return weights.user_embeddings[rows] + summed / count


def score_all_items(weights: ModelWeights, vectors: Float32Array) -> Float32Array:
    """Score of every catalog item for each user vector, shape [batch, n_items]."""
    return vectors @ weights.item_embeddings.T + weights.item_bias[None, :]


def top_k(scores: Float32Array, k: int = TOP_K) -> tuple[Int64Array, Float32Array]:
    """Best k items per row, descending; ties go to the lower item id, as ONNX TopK does."""
    k = min(k, scores.shape[1])
    candidates = _top_k_candidates(scores, k)
    candidate_scores = np.take_along_axis(scores, candidates, axis=1)
    # Sort by score descending, then by item id ascending, so the order is total.
    order = np.lexsort((candidates, -candidate_scores), axis=1)
    item_ids = np.take_along_axis(candidates, order, axis=1).astype(np.int64)
    return item_ids, np.take_along_axis(candidate_scores, order, axis=1)


def _top_k_candidates(scores: Float32Array, k: int) -> Int64Array:
    """The k best columns per row (unordered), lower ids winning ties at the cut."""
    if k == scores.shape[1]:
        return np.broadcast_to(np.arange(k, dtype=np.int64), scores.shape).copy()
    cut = scores.shape[1] - k
    candidates = np.argpartition(scores, cut, axis=1)[:, cut:]
    kth_best = np.take_along_axis(scores, candidates, axis=1).min(axis=1)
    # argpartition breaks ties arbitrarily; rows with a tie at the cut take the slow exact path.
    tied_rows = np.flatnonzero((scores >= kth_best[:, None]).sum(axis=1) > k)
    if tied_rows.size:
        exact = np.argsort(-scores[tied_rows], axis=1, kind="stable")[:, :k]
        candidates[tied_rows] = exact
    return candidates.astype(np.int64)


def recommend(
    weights: ModelWeights, user_ids: npt.ArrayLike, histories: npt.ArrayLike
) -> tuple[Int64Array, Float32Array]:
    """Top TOP_K (item_ids, scores) per request, as the serving contract defines them.

    ``user_ids`` has shape [batch] or [batch, 1]; ``histories`` is [batch, length],
    oldest item first, padded with PAD_ITEM.
    """
    histories = np.asarray(histories, dtype=np.int64)
    vectors = user_vectors(weights, user_ids, histories)
    return top_k(score_all_items(weights, vectors))
