"""Requests merged into one model call get exactly the answers they would get alone."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest

from spillover.model.contract import HISTORY_WINDOW, PAD_ITEM
from spillover.serving.batching import merge_requests, pad_histories, split_outputs


def run(session: onnxruntime.InferenceSession, users: np.ndarray, histories: np.ndarray):
    return session.run(None, {"user_id": users, "history": histories})


MIXES = {
    "same shapes": [(1, 50), (3, 50), (2, 50)],
    "short beside long": [(1, 3), (2, 120), (1, 0)],
    "one request": [(4, 7)],
}


@pytest.mark.parametrize("shapes", list(MIXES.values()), ids=list(MIXES))
def test_merged_batch_answers_like_separate_requests(onnx_session, shapes):
    rng = np.random.default_rng(3)
    users = [rng.integers(-2, 300, size=(batch, 1)).astype(np.int64) for batch, _ in shapes]
    histories = [
        rng.integers(-1, 1200, size=(batch, length)).astype(np.int64) for batch, length in shapes
    ]
    merged_users, merged_histories, sizes = merge_requests(users, histories)
    merged_ids, merged_scores = run(onnx_session, merged_users, merged_histories)
    for ids, scores, user, history in zip(
        split_outputs(merged_ids, sizes),
        split_outputs(merged_scores, sizes),
        users,
        histories,
        strict=True,
    ):
        alone_ids, alone_scores = run(onnx_session, user, history)
        np.testing.assert_array_equal(ids, alone_ids)
        np.testing.assert_allclose(scores, alone_scores, rtol=1e-5)


def test_pad_histories_keeps_the_most_recent_items_at_the_end():
    padded = pad_histories([[1, 2, 3], list(range(100)), []])
    assert padded.shape == (3, HISTORY_WINDOW)
    assert padded[0, -3:].tolist() == [1, 2, 3] and set(padded[0, :-3]) == {PAD_ITEM}
    assert padded[1].tolist() == list(range(50, 100))
    assert set(padded[2]) == {PAD_ITEM}
