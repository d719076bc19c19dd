"""A local Triton replica serves an int8 model end to end, through the gateway."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime

from spillover.local.stack import LocalStack
from spillover.model.build import model_sizes, onnx_path
from spillover.model.contract import INPUT_HISTORY, INPUT_USER_ID, OUTPUT_ITEM_IDS, OUTPUT_SCORES
from spillover.model.precision import Precision
from spillover.serving.batching import pad_histories
from spillover.serving.client import RecommenderClient
from tests.support import small_layout


def _onnx_answer(session: onnxruntime.InferenceSession, users: list[int], histories: np.ndarray):
    return session.run(
        [OUTPUT_ITEM_IDS, OUTPUT_SCORES],
        {INPUT_USER_ID: np.array(users, dtype=np.int64).reshape(-1, 1), INPUT_HISTORY: histories},
    )


def test_local_replica_serves_the_int8_model(
    tmp_path: Path, model_repo_at: Callable[[Precision], Path]
) -> None:
    int8_file = onnx_path(model_repo_at(Precision.INT8))
    n_users, n_items = model_sizes(model_repo_at(Precision.INT8))
    int8 = onnxruntime.InferenceSession(str(int8_file), providers=["CPUExecutionProvider"])
    fp32 = onnxruntime.InferenceSession(
        str(onnx_path(model_repo_at(Precision.FP32))), providers=["CPUExecutionProvider"]
    )
    # One request of several users is one batch: int8's run-time scale is the batch's.
    requests = [
        ([0, 7, n_users - 1, n_users + 5], [[], [5, 9, 11], list(range(60)), [n_items - 1, 3]]),
        ([42], [[1, 2, 3]]),
        ([-1], [[]]),
    ]
    stack = LocalStack(tmp_path / "run")
    layout = small_layout(private=1, burst=0)
    stack.up(layout, int8_file, ready_timeout=120)
    try:
        with RecommenderClient(stack.gateway_endpoints["http"]) as client:
            differs_from_fp32 = False
            for users, history_lists in requests:
                histories = pad_histories(history_lists)
                served = client.recommend(users, histories)
                want_ids, want_scores = _onnx_answer(int8, users, histories)
                np.testing.assert_array_equal(served.item_ids, want_ids)
                np.testing.assert_array_equal(served.scores, want_scores)
                _, fp32_scores = _onnx_answer(fp32, users, histories)
                differs_from_fp32 |= not np.array_equal(served.scores, fp32_scores)
            assert differs_from_fp32, "the replica answered exactly like fp32: not the int8 file"
    finally:
        stack.down()
