"""Training learns something popularity cannot, deterministically; the evaluation counts right."""

from __future__ import annotations

import numpy as np
import pytest

from spillover.model.contract import PAD_ITEM, TOP_K
from spillover.model.evaluate import (
    HoldoutSplit,
    evaluate,
    popular_items,
    ranking_metrics,
    split_last_clicks,
)
from spillover.model.reference import recommend
from spillover.model.synth import InteractionLog, SynthConfig, generate
from spillover.model.train import TrainConfig, TrainResult, train


@pytest.fixture(scope="module")
def evaluation(trained: TrainResult, small_split: HoldoutSplit):
    return evaluate(trained.weights, small_split)


def test_model_beats_popularity_recall_by_at_least_2x(evaluation) -> None:
    assert evaluation.model.recall >= 2 * evaluation.popularity.recall, evaluation
    assert evaluation.model.ndcg > evaluation.popularity.ndcg


def test_unknown_users_get_recommendations_from_their_history(evaluation) -> None:
    assert evaluation.history_only.recall >= 1.5 * evaluation.popularity.recall, evaluation


def test_unknown_user_without_history_gets_mostly_popular_items(
    trained: TrainResult, small_split: HoldoutSplit
) -> None:
    item_ids, _ = recommend(trained.weights, [-1], np.empty((1, 0), dtype=np.int64))
    popular = set(popular_items(small_split.train_log).tolist())
    assert len(popular & set(item_ids[0].tolist())) >= TOP_K // 2


def test_training_loss_falls(trained: TrainResult) -> None:
    assert trained.epoch_losses[-1] < trained.epoch_losses[0]


def test_training_is_deterministic_for_a_seed() -> None:
    log = generate(SynthConfig(n_users=200, n_items=100, n_categories=5, seed=1))
    config = TrainConfig(epochs=1, batch_size=256, dim=8, seed=5)
    first, again = train(log, config).weights, train(log, config).weights
    other = train(log, TrainConfig(epochs=1, batch_size=256, dim=8, seed=6)).weights
    for name in ("user_embeddings", "history_embeddings", "item_embeddings", "item_bias"):
        assert np.array_equal(getattr(first, name), getattr(again, name)), name
    assert not np.array_equal(first.item_embeddings, other.item_embeddings)


def _hand_made_log() -> InteractionLog:
    # user 0 clicks 10, 11, 12; user 1 clicks 20, 21; user 2 clicks only 30.
    users = np.array([0, 0, 0, 1, 1, 2])
    items = np.array([10, 11, 12, 20, 21, 30])
    return InteractionLog(
        user_ids=users,
        item_ids=items,
        timestamps=np.arange(6),
        session_ids=np.arange(6),
        item_categories=np.zeros(40, dtype=np.int64),
        n_users=3,
    )


def test_split_holds_out_each_users_last_click() -> None:
    split = split_last_clicks(_hand_made_log())
    assert split.users.tolist() == [0, 1]
    assert split.targets.tolist() == [[12], [21]]
    # A user with a single click has nothing to hold out and keeps it for training.
    assert split.train_log.item_ids.tolist() == [10, 11, 20, 30]


def test_history_is_the_clicks_before_the_held_out_one_right_aligned() -> None:
    split = split_last_clicks(_hand_made_log())
    assert split.histories[0, -2:].tolist() == [10, 11]
    assert split.histories[1, -1:].tolist() == [20]
    assert np.all(split.histories[0, :-2] == PAD_ITEM)


@pytest.mark.parametrize(
    ("recommended", "targets", "recall", "ndcg"),
    [
        pytest.param([[7, 3, 9]], [[7]], 1.0, 1.0, id="hit-at-first-rank"),
        pytest.param([[7, 3, 9]], [[3]], 1.0, 1 / np.log2(3), id="hit-at-second-rank"),
        pytest.param([[7, 3, 9]], [[4]], 0.0, 0.0, id="miss"),
        pytest.param([[7, 3, 9], [1, 2, 3]], [[9], [5]], 0.5, 0.25, id="mean-over-users"),
        pytest.param([[7, 3, 9]], [[3, 5]], 0.5, (1 / np.log2(3)) / (1 + 1 / np.log2(3)),
                     id="two-targets-one-found"),
    ],
)  # fmt: skip
def test_ranking_metrics_match_hand_computation(
    recommended: list[list[int]], targets: list[list[int]], recall: float, ndcg: float
) -> None:
    metrics = ranking_metrics(np.array(recommended), np.array(targets))
    assert metrics.recall == pytest.approx(recall)
    assert metrics.ndcg == pytest.approx(ndcg)


def test_training_copes_with_batches_without_any_history() -> None:
    # One click per user: no example has a history, every batch is history-free.
    log = generate(
        SynthConfig(n_users=64, n_items=30, n_categories=3, mean_sessions_per_user=1,
                    mean_session_length=1)
    )  # fmt: skip
    result = train(log, TrainConfig(epochs=2, batch_size=8, dim=4))
    assert all(np.isfinite(result.epoch_losses))
