"""Offline evaluation: leave each user's last click(s) out, rank, and compare with popularity.

Each user's last ``n_holdout`` clicks are the test targets; everything before is
both the training data and the history the model sees at test time, exactly as a
live request would carry it. The model is scored through the reference forward
pass, so the numbers describe what serving returns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spillover.model.contract import HISTORY_WINDOW, PAD_ITEM, TOP_K
from spillover.model.reference import Int64Array, ModelWeights, recommend
from spillover.model.synth import InteractionLog

EVAL_CHUNK = 2048
"""Users scored per forward pass; bounds memory at chunk x n_items scores."""


@dataclass(frozen=True)
class HoldoutSplit:
    """Training clicks, and per evaluated user the history and held-out targets."""

    train_log: InteractionLog
    """Every click except the held-out ones, still grouped by user in time order."""

    users: Int64Array
    """Evaluated users (those with more clicks than the holdout size)."""

    histories: Int64Array
    """[n_eval_users, HISTORY_WINDOW] last training clicks, oldest first, PAD_ITEM padded."""

    targets: Int64Array
    """[n_eval_users, n_holdout] held-out clicks."""


@dataclass(frozen=True)
class RankingMetrics:
    """Recall and NDCG at TOP_K, averaged over evaluated users."""

    recall: float
    """Share of held-out clicks found in the top TOP_K."""

    ndcg: float
    """Binary-relevance NDCG at TOP_K."""


@dataclass(frozen=True)
class Evaluation:
    """The model against the popularity baseline on the same held-out clicks."""

    model: RankingMetrics
    """The two-tower model with each user's id and history."""

    history_only: RankingMetrics
    """The model when every user id is unknown (the out-of-vocabulary row plus history)."""

    popularity: RankingMetrics
    """The TOP_K most clicked training items, the same list for everyone."""

    n_users: int
    """How many users were evaluated."""

    @property
    def recall_ratio(self) -> float:
        """Model Recall@K over popularity Recall@K (inf if popularity found nothing)."""
        if self.popularity.recall == 0:
            return float("inf")
        return self.model.recall / self.popularity.recall


def split_last_clicks(log: InteractionLog, n_holdout: int = 1) -> HoldoutSplit:
    """Hold out each user's last ``n_holdout`` clicks (users with too few clicks stay whole)."""
    if n_holdout < 1:
        raise ValueError("n_holdout must be at least 1")
    counts = np.bincount(log.user_ids, minlength=log.n_users)
    row_from_end = _rows_until_user_end(log.user_ids)
    evaluated = counts[log.user_ids] > n_holdout
    held_out = evaluated & (row_from_end < n_holdout)
    train_log = _select_rows(log, ~held_out)
    targets = log.item_ids[held_out].reshape(-1, n_holdout)
    users = log.user_ids[held_out].reshape(-1, n_holdout)[:, 0]
    histories = _last_clicks_per_user(train_log, users)
    return HoldoutSplit(train_log, users, histories, targets)


def evaluate(weights: ModelWeights, split: HoldoutSplit) -> Evaluation:
    """Recall@TOP_K and NDCG@TOP_K of the model, the history-only model and popularity."""
    model_top = _recommend_in_chunks(weights, split.users, split.histories)
    unknown_users = np.full_like(split.users, -1)
    history_only_top = _recommend_in_chunks(weights, unknown_users, split.histories)
    popular = popular_items(split.train_log)
    popularity_top = np.broadcast_to(popular, (split.users.size, popular.size))
    return Evaluation(
        model=ranking_metrics(model_top, split.targets),
        history_only=ranking_metrics(history_only_top, split.targets),
        popularity=ranking_metrics(popularity_top, split.targets),
        n_users=int(split.users.size),
    )


def popular_items(log: InteractionLog, k: int = TOP_K) -> Int64Array:
    """The k most clicked items, most clicked first (ties to the lower id)."""
    counts = np.bincount(log.item_ids, minlength=log.n_items)
    return np.argsort(-counts, kind="stable")[:k].astype(np.int64)


def ranking_metrics(recommended: Int64Array, targets: Int64Array) -> RankingMetrics:
    """Recall and binary NDCG of ranked lists [users, k] against targets [users, n]."""
    k = recommended.shape[1]
    hit_at_rank = (recommended[:, :, None] == targets[:, None, :]).any(axis=2)
    found = (targets[:, :, None] == recommended[:, None, :]).any(axis=2)
    discounts = 1.0 / np.log2(np.arange(k) + 2.0)
    ideal = discounts[: min(k, targets.shape[1])].sum()
    return RankingMetrics(
        recall=float(found.mean(axis=1).mean()),
        ndcg=float((hit_at_rank @ discounts / ideal).mean()),
    )


def _recommend_in_chunks(
    weights: ModelWeights, users: Int64Array, histories: Int64Array
) -> Int64Array:
    chunks = [
        recommend(
            weights, users[start : start + EVAL_CHUNK], histories[start : start + EVAL_CHUNK]
        )[0]
        for start in range(0, users.size, EVAL_CHUNK)
    ]
    return np.concatenate(chunks) if chunks else np.empty((0, TOP_K), dtype=np.int64)


def _rows_until_user_end(user_ids: Int64Array) -> Int64Array:
    """For each row, how many later rows belong to the same user."""
    reversed_ids = user_ids[::-1]
    rows = np.arange(user_ids.size)
    starts = np.r_[True, reversed_ids[1:] != reversed_ids[:-1]]
    first = np.maximum.accumulate(np.where(starts, rows, 0))
    return (rows - first)[::-1]


def _select_rows(log: InteractionLog, keep: np.ndarray) -> InteractionLog:
    return InteractionLog(
        user_ids=log.user_ids[keep],
        item_ids=log.item_ids[keep],
        timestamps=log.timestamps[keep],
        session_ids=log.session_ids[keep],
        item_categories=log.item_categories,
        n_users=log.n_users,
    )


def _last_clicks_per_user(log: InteractionLog, users: Int64Array) -> Int64Array:
    """[len(users), HISTORY_WINDOW] of each user's last clicks, right-aligned, PAD_ITEM before."""
    row_from_end = _rows_until_user_end(log.user_ids)
    recent = row_from_end < HISTORY_WINDOW
    user_position = np.full(log.n_users, -1, dtype=np.int64)
    user_position[users] = np.arange(users.size)
    rows = user_position[log.user_ids[recent]]
    histories = np.full((users.size, HISTORY_WINDOW), PAD_ITEM, dtype=np.int64)
    keep = rows >= 0
    columns = HISTORY_WINDOW - 1 - row_from_end[recent][keep]
    histories[rows[keep], columns] = log.item_ids[recent][keep]
    return histories
