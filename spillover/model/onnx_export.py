"""Export the trained weights as an ONNX graph that implements the whole serving contract.

The edge behaviour (unknown users, padding, out-of-catalog ids, the history
window, empty histories) and the top-K live inside the graph, so ONNX Runtime on
a cluster GPU and the local Python backend return the same thing as the numpy
reference. Every index is masked and clamped before a Gather: no input values
can make the runtime raise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from spillover.model.contract import (
    HISTORY_WINDOW,
    INPUT_HISTORY,
    INPUT_USER_ID,
    MODEL_NAME,
    OUTPUT_ITEM_IDS,
    OUTPUT_SCORES,
    TOP_K,
)
from spillover.model.reference import ModelWeights

OPSET = 17
"""ONNX opset of the graph: recent enough for axes-as-input Reduce/Squeeze ops."""

IR_VERSION = 8
"""IR version matching opset 17, so older ONNX Runtime builds in Triton images load it."""

BATCH_DIM = "batch"
HISTORY_DIM = "history_length"
INT64_MAX = np.iinfo(np.int64).max


def build_model(weights: ModelWeights) -> onnx.ModelProto:
    """The recommender graph for ``weights``, checked by ``onnx.checker``."""
    if weights.n_items < TOP_K:
        raise ValueError(f"the catalog needs at least TOP_K={TOP_K} items, has {weights.n_items}")
    graph = helper.make_graph(
        nodes=[*_user_row_nodes(), *_history_mean_nodes(), *_scoring_nodes()],
        name=MODEL_NAME,
        inputs=[
            helper.make_tensor_value_info(INPUT_USER_ID, TensorProto.INT64, [BATCH_DIM, 1]),
            helper.make_tensor_value_info(
                INPUT_HISTORY, TensorProto.INT64, [BATCH_DIM, HISTORY_DIM]
            ),
        ],
        outputs=[
            helper.make_tensor_value_info(OUTPUT_ITEM_IDS, TensorProto.INT64, [BATCH_DIM, TOP_K]),
            helper.make_tensor_value_info(OUTPUT_SCORES, TensorProto.FLOAT, [BATCH_DIM, TOP_K]),
        ],
        initializer=_initializers(weights),
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="spillover",
        doc_string="Two-tower recommender: user id + recent history in, top-K items out.",
    )
    model.ir_version = IR_VERSION
    helper.set_model_props(
        model,
        {"n_users": str(weights.n_users), "n_items": str(weights.n_items), "dim": str(weights.dim)},
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def export(weights: ModelWeights, path: Path) -> Path:
    """Write the checked graph to ``path`` (parents created) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(build_model(weights), str(path))
    return path


def _initializers(weights: ModelWeights) -> list[TensorProto]:
    def tensor(name: str, value: np.ndarray) -> TensorProto:
        return numpy_helper.from_array(np.ascontiguousarray(value), name)

    def int64(name: str, *values: int) -> TensorProto:
        return tensor(name, np.array(values, dtype=np.int64))

    return [
        tensor("user_embeddings", weights.user_embeddings.astype(np.float32)),
        tensor("history_embeddings", weights.history_embeddings.astype(np.float32)),
        tensor("item_embeddings_t", weights.item_embeddings.T.astype(np.float32)),
        tensor("item_bias", weights.item_bias.astype(np.float32)),
        tensor("zero", np.array(0, dtype=np.int64)),
        tensor("one_float", np.array(1.0, dtype=np.float32)),
        tensor("n_users", np.array(weights.n_users, dtype=np.int64)),
        tensor("oov_user_row", np.array(weights.oov_user_row, dtype=np.int64)),
        tensor("n_items", np.array(weights.n_items, dtype=np.int64)),
        int64("axis_1", 1),
        int64("axis_2", 2),
        int64("window_start", -HISTORY_WINDOW),
        int64("window_end", INT64_MAX),
        int64("top_k", TOP_K),
    ]


def _user_row_nodes() -> list[onnx.NodeProto]:
    """user_id [batch, 1] -> user_vector_part [batch, dim]; unknown ids -> the OOV row."""
    node = helper.make_node
    return [
        node("Squeeze", [INPUT_USER_ID, "axis_1"], ["user_flat"]),
        node("GreaterOrEqual", ["user_flat", "zero"], ["user_not_negative"]),
        node("Less", ["user_flat", "n_users"], ["user_below_n_users"]),
        node("And", ["user_not_negative", "user_below_n_users"], ["user_known"]),
        node("Where", ["user_known", "user_flat", "oov_user_row"], ["user_row"]),
        node("Gather", ["user_embeddings", "user_row"], ["user_embedding"], axis=0),
    ]


def _history_mean_nodes() -> list[onnx.NodeProto]:
    """history [batch, len] -> mean embedding of the valid items among the last window."""
    node = helper.make_node
    return [
        node("Slice", [INPUT_HISTORY, "window_start", "window_end", "axis_1"], ["window"]),
        node("GreaterOrEqual", ["window", "zero"], ["item_not_negative"]),
        node("Less", ["window", "n_items"], ["item_in_catalog"]),
        node("And", ["item_not_negative", "item_in_catalog"], ["item_valid"]),
        # Clamp after masking: invalid ids read row 0, and the mask zeroes them out.
        node("Where", ["item_valid", "window", "zero"], ["item_row"]),
        node("Gather", ["history_embeddings", "item_row"], ["history_vectors"], axis=0),
        node("Cast", ["item_valid"], ["item_weight"], to=TensorProto.FLOAT),
        node("Unsqueeze", ["item_weight", "axis_2"], ["item_weight_3d"]),
        node("Mul", ["history_vectors", "item_weight_3d"], ["masked_history"]),
        node("ReduceSum", ["masked_history", "axis_1"], ["history_sum"], keepdims=0),
        node("ReduceSum", ["item_weight", "axis_1"], ["valid_count"], keepdims=1),
        # An empty or all-padding history sums to zero; dividing by 1 keeps it zero.
        node("Max", ["valid_count", "one_float"], ["safe_count"]),
        node("Div", ["history_sum", "safe_count"], ["history_mean"]),
    ]


def _scoring_nodes() -> list[onnx.NodeProto]:
    """user vector -> scores of every item -> the TOP_K best, descending."""
    node = helper.make_node
    return [
        node("Add", ["user_embedding", "history_mean"], ["user_vector"]),
        node("MatMul", ["user_vector", "item_embeddings_t"], ["item_dot"]),
        node("Add", ["item_dot", "item_bias"], ["all_scores"]),
        node(
            "TopK",
            ["all_scores", "top_k"],
            [OUTPUT_SCORES, OUTPUT_ITEM_IDS],
            axis=-1,
            largest=1,
            sorted=1,
        ),
    ]
