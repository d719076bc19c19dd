"""The ONNX graph serves exactly what the numpy reference computes, edge cases included.

At every precision: the fp16 and int8 graphs against the numpy reference of their
precision (``precision_reference``), within that precision's tolerance."""

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
from spillover.model.precision import Precision
from spillover.model.precision_reference import SCORE_TOLERANCE, Tolerance, scores_at
from spillover.model.reference import ModelWeights, top_k
from spillover.model.train import TrainResult

FP32_TOLERANCE = SCORE_TOLERANCE[Precision.FP32].atol
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


def _assert_a_top_k_of(
    item_ids: np.ndarray, scores: np.ndarray, all_scores: np.ndarray, tolerance: Tolerance
) -> None:
    """The served lists are a top-K of the reference's scores, up to the tolerance: each
    item carries the score the reference gives it, and no item left out beats one served
    by more than both may move. Ties and near-ties may come in either order."""
    assert all(len(set(row)) == TOP_K for row in item_ids.tolist()), "an item came twice"
    their_reference_scores = np.take_along_axis(all_scores, item_ids, axis=1)
    np.testing.assert_allclose(
        scores, their_reference_scores, rtol=tolerance.rtol, atol=tolerance.atol
    )
    kth_best = -np.partition(-all_scores, TOP_K - 1, axis=1)[:, TOP_K - 1 : TOP_K]
    assert (their_reference_scores >= kth_best - 2 * tolerance.bound(kth_best)).all()


@pytest.mark.parametrize("precision", [precision.value for precision in Precision])
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_onnx_matches_its_precision_reference(
    case: str,
    precision: str,
    trained: TrainResult,
    precision_sessions: dict[str, onnxruntime.InferenceSession],
) -> None:
    weights, tolerance = trained.weights, SCORE_TOLERANCE[Precision(precision)]
    users, histories = (
        np.asarray(a, np.int64) for a in CASES[case](np.random.default_rng(0), weights)
    )
    onnx_ids, onnx_scores = _run(precision_sessions[precision], (users, histories))
    # One call, one batch: int8 quantizes the user vectors over the whole batch.
    all_scores = scores_at(Precision(precision), weights, users, histories)
    _, reference_scores = top_k(all_scores)

    assert onnx_ids.shape == (users.shape[0], TOP_K) and onnx_ids.dtype == np.int64
    assert onnx_scores.dtype == np.float32
    np.testing.assert_allclose(
        onnx_scores, reference_scores, rtol=tolerance.rtol, atol=tolerance.atol
    )
    _assert_a_top_k_of(onnx_ids, onnx_scores, all_scores, tolerance)


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
    np.testing.assert_allclose(got_scores, want_scores, atol=FP32_TOLERANCE)


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
