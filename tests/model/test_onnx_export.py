"""The ONNX graph serves exactly what the numpy reference computes, edge cases included."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest

from spillover.model.contract import (
    HISTORY_WINDOW,
    INPUT_HISTORY,
    INPUT_USER_ID,
    OUTPUT_ITEM_IDS,
    OUTPUT_SCORES,
    PAD_ITEM,
    TOP_K,
)
from spillover.model.reference import ModelWeights, recommend, score_all_items, user_vectors
from spillover.model.train import TrainResult

SCORE_TOLERANCE = 1e-4
INT64_MIN, INT64_MAX = np.iinfo(np.int64).min, np.iinfo(np.int64).max

Requests = tuple[np.ndarray, np.ndarray]


def _known(rng: np.random.Generator, w: ModelWeights, batch: int, length: int) -> Requests:
    users = rng.integers(0, w.n_users, size=(batch, 1))
    return users, rng.integers(0, w.n_items, size=(batch, length))


CASES: dict[str, Callable[[np.random.Generator, ModelWeights], Requests]] = {
    "known-users": lambda rng, w: _known(rng, w, 16, 10),
    "unknown-and-negative-users": lambda rng, w: (
        np.array([[-1], [w.n_users], [w.n_users + 999], [-12345], [INT64_MIN], [INT64_MAX]]),
        rng.integers(0, w.n_items, size=(6, 5)),
    ),
    "empty-history": lambda rng, w: (
        rng.integers(-3, w.n_users + 3, size=(8, 1)),
        np.empty((8, 0), dtype=np.int64),
    ),
    "all-padding-history": lambda rng, w: (
        rng.integers(-3, w.n_users + 3, size=(8, 1)),
        np.full((8, 12), PAD_ITEM),
    ),
    "history-longer-than-window": lambda rng, w: _known(rng, w, 8, HISTORY_WINDOW * 3),
    "out-of-catalog-item-ids": lambda rng, w: (
        rng.integers(0, w.n_users, size=(8, 1)),
        rng.choice([-7, PAD_ITEM, 3, 5, w.n_items, w.n_items + 50, INT64_MAX, INT64_MIN], (8, 9)),
    ),
    "batch-of-one": lambda rng, w: _known(rng, w, 1, 7),
    "batch-of-many": lambda rng, w: (
        rng.integers(-50, w.n_users + 50, size=(300, 1)),
        rng.integers(-20, w.n_items + 20, size=(300, 70)),
    ),
}


def _run(session: onnxruntime.InferenceSession, requests: Requests) -> Requests:
    users, histories = (np.asarray(array, dtype=np.int64) for array in requests)
    item_ids, scores = session.run(
        [OUTPUT_ITEM_IDS, OUTPUT_SCORES], {INPUT_USER_ID: users, INPUT_HISTORY: histories}
    )
    return item_ids, scores


def _untied_ranks(weights: ModelWeights, users: np.ndarray, histories: np.ndarray) -> np.ndarray:
    """[batch, TOP_K] mask of ranks whose score is clear of its neighbours (incl. rank K+1)."""
    scores = score_all_items(weights, user_vectors(weights, users, histories))
    best = -np.sort(-scores, axis=1)[:, : TOP_K + 1]
    gap_below = best[:, :TOP_K] - best[:, 1:]
    gap_above = np.concatenate([np.full((best.shape[0], 1), np.inf), gap_below[:, :-1]], axis=1)
    return (gap_below > SCORE_TOLERANCE) & (gap_above > SCORE_TOLERANCE)


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_onnx_matches_reference(
    case: str, trained: TrainResult, onnx_session: onnxruntime.InferenceSession
) -> None:
    weights = trained.weights
    users, histories = (
        np.asarray(a, np.int64) for a in CASES[case](np.random.default_rng(0), weights)
    )
    onnx_ids, onnx_scores = _run(onnx_session, (users, histories))
    reference_ids, reference_scores = recommend(weights, users, histories)

    assert onnx_ids.shape == (users.shape[0], TOP_K) and onnx_ids.dtype == np.int64
    assert onnx_scores.dtype == np.float32
    np.testing.assert_allclose(onnx_scores, reference_scores, atol=SCORE_TOLERANCE)
    untied = _untied_ranks(weights, users, histories)
    assert untied.mean() > 0.8, "too many ties to compare ids meaningfully"
    np.testing.assert_array_equal(onnx_ids[untied], reference_ids[untied])


def test_scores_come_back_in_descending_order(
    trained: TrainResult, onnx_session: onnxruntime.InferenceSession
) -> None:
    _, scores = _run(
        onnx_session, CASES["batch-of-many"](np.random.default_rng(1), trained.weights)
    )
    assert np.all(np.diff(scores, axis=1) <= 0)


def test_unknown_user_ids_all_share_the_oov_recommendations(
    trained: TrainResult, onnx_session: onnxruntime.InferenceSession
) -> None:
    weights = trained.weights
    unknown = np.array([[-1], [weights.n_users], [INT64_MAX], [INT64_MIN]])
    history = np.tile([[3, 4, 5]], (4, 1))
    item_ids, _ = _run(onnx_session, (unknown, history))
    assert (item_ids == item_ids[0]).all()
    known_ids, _ = _run(onnx_session, (np.array([[0]]), history[:1]))
    assert not np.array_equal(known_ids[0], item_ids[0]), "a known user should differ from OOV"


@pytest.mark.parametrize(
    ("history", "equivalent"),
    [
        pytest.param([[PAD_ITEM, 3, PAD_ITEM, 4]], [[3, 4]], id="padding-is-ignored"),
        pytest.param([[3, 10**9, -5, 4]], [[3, 4]], id="out-of-catalog-ids-are-ignored"),
        pytest.param(
            [[9] * 30 + list(range(HISTORY_WINDOW))], [list(range(HISTORY_WINDOW))],
            id="only-the-last-window-counts",
        ),
        pytest.param([[PAD_ITEM] * 5], np.empty((1, 0), np.int64), id="all-padding-is-empty"),
    ],
)  # fmt: skip
def test_history_edge_behaviour(
    history: list[list[int]],
    equivalent: list[list[int]],
    onnx_session: onnxruntime.InferenceSession,
) -> None:
    user = np.array([[1]])
    got_ids, got_scores = _run(onnx_session, (user, np.array(history)))
    want_ids, want_scores = _run(onnx_session, (user, np.asarray(equivalent, dtype=np.int64)))
    np.testing.assert_array_equal(got_ids, want_ids)
    np.testing.assert_allclose(got_scores, want_scores, atol=SCORE_TOLERANCE)


def test_graph_declares_the_contract_io_with_dynamic_batch_and_length(onnx_file: Path) -> None:
    model = onnx.load(str(onnx_file))
    onnx.checker.check_model(model, full_check=True)
    assert max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")) >= 17

    def shape(value: onnx.ValueInfoProto) -> list[object]:
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    io = {value.name: value for value in [*model.graph.input, *model.graph.output]}
    assert set(io) == {INPUT_USER_ID, INPUT_HISTORY, OUTPUT_ITEM_IDS, OUTPUT_SCORES}
    batch = shape(io[INPUT_USER_ID])[0]
    assert isinstance(batch, str) and batch
    assert shape(io[INPUT_USER_ID]) == [batch, 1]
    assert shape(io[INPUT_HISTORY])[0] == batch and isinstance(shape(io[INPUT_HISTORY])[1], str)
    assert shape(io[OUTPUT_ITEM_IDS]) == [batch, TOP_K]
    assert shape(io[OUTPUT_SCORES]) == [batch, TOP_K]
    assert "TopK" in {node.op_type for node in model.graph.node}
