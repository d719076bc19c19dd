"""The recommender's serving contract: the one place its names, dtypes and shapes live.

The ONNX exporter, both Triton configs (ONNX Runtime on GPU in clusters, Python
backend locally), the clients and the tests all read these, so a change here
changes every side at once.

Behaviour at the edges is part of the contract, and the ONNX graph implements it
so that every backend behaves the same:

* ``user_id`` outside ``[0, n_users)`` (a new or unknown user) maps to the
  out-of-vocabulary user vector: recommendations then come from the history alone,
  or from item popularity when the history is empty too.
* ``history`` lists item ids oldest first, padded at the front with ``PAD_ITEM``.
  Only its last ``HISTORY_WINDOW`` positions count (longer histories are truncated
  from the old end). ``PAD_ITEM`` and any id outside ``[0, n_items)`` are ignored, so
  an empty or all-padding history is valid.
* Wrong dtypes or ranks are rejected by Triton with an error naming the input.
"""

from __future__ import annotations

MODEL_NAME = "recommender"

INPUT_USER_ID = "user_id"
"""INT64, per-request shape [1]: the user's id."""

INPUT_HISTORY = "history"
"""INT64, per-request shape [-1]: recent item ids, oldest first, front-padded with PAD_ITEM."""

OUTPUT_ITEM_IDS = "item_ids"
"""INT64, per-request shape [TOP_K]: recommended item ids, best first."""

OUTPUT_SCORES = "scores"
"""FP32, per-request shape [TOP_K]: the score of each recommended item, descending."""

TOP_K = 20
"""How many items one request returns (Recall@20 / NDCG@20 are measured at this K)."""

HISTORY_WINDOW = 50
"""How many of the most recent history items the user tower reads."""

PAD_ITEM = -1
"""History padding value; ignored by the model like any out-of-catalog id."""

MAX_BATCH_SIZE = 64
"""Largest batch Triton's dynamic batcher forms (the ONNX graph's batch dim is dynamic)."""

CAPACITY_VARIABLE = "SPILLOVER_CAPACITY_RPS"
"""Environment variable the local driver sets from a pool's capacity_rps: requests/s the
local Python-backend replica is held to (spillover/serving/service_time.py). Unset means
no cap: the replica serves as fast as its CPU lets it."""
