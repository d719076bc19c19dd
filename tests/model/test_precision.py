"""fp16 and int8 builds: smaller, as good as fp32 on held-out clicks, same serving contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from spillover.model.contract import TOP_K
from spillover.model.evaluate import HoldoutSplit
from spillover.model.precision import Precision
from spillover.model.precision_eval import FIRST_ITEMS, compare_with_fp32, top_k_agreement
from spillover.model.triton_config import parse_config, render_cluster_config, validate_against_onnx

REDUCED = [Precision.FP16.value, Precision.INT8.value]

MAX_SIZE_VS_FP32 = {Precision.FP16.value: 0.55, Precision.INT8.value: 0.30}
"""fp16 halves every float (the small int64 constants stay); int8 must meet issue 16's 30%."""


@pytest.mark.parametrize("precision", REDUCED)
def test_reduced_precision_is_smaller_on_disk(
    precision: str, precision_files: dict[str, Path]
) -> None:
    size = precision_files[precision].stat().st_size
    fp32_size = precision_files[Precision.FP32.value].stat().st_size
    assert size <= MAX_SIZE_VS_FP32[precision] * fp32_size, f"{size} vs fp32 {fp32_size} bytes"


@pytest.mark.parametrize("precision", REDUCED)
def test_reduced_precision_keeps_fp32s_quality_and_most_of_its_order(
    precision: str, precision_files: dict[str, Path], small_split: HoldoutSplit
) -> None:
    """On the 1,500 held-out users of the small model (figures when written):
    fp16 returns fp32's exact top-20 for 97% of them; int8 for 42%, fp32's first 5 in
    order for 94% and fp32's 20 items for 92%. int8's swaps are among near-ties:
    Recall@20 stays within 1% of fp32's (100.2% here)."""
    comparison = compare_with_fp32(
        Precision(precision),
        precision_files[precision],
        precision_files[Precision.FP32.value],
        split=small_split,
    )
    agreement = comparison.agreement
    assert comparison.recall_vs_fp32 >= 0.99
    assert comparison.served.ndcg >= 0.99 * comparison.fp32.ndcg
    if precision == Precision.FP16.value:
        assert agreement.same_order >= 0.9, agreement
    else:
        assert agreement.same_first >= 0.9 and agreement.same_items >= 0.85, agreement
        assert agreement.same_order >= 0.3, agreement


@pytest.mark.parametrize("precision", REDUCED)
def test_serving_contract_is_the_same_at_every_precision(
    precision: str, precision_files: dict[str, Path]
) -> None:
    def io(path: Path) -> list[str]:
        graph = onnx.load(str(path)).graph
        return [str(value) for value in [*graph.input, *graph.output]]

    assert io(precision_files[precision]) == io(precision_files[Precision.FP32.value])
    graph = onnx.load(str(precision_files[precision])).graph
    assert "TopK" in {node.op_type for node in graph.node}
    validate_against_onnx(parse_config(render_cluster_config()), precision_files[precision])


def test_int8_stores_its_tables_as_8_bit_codes(precision_files: dict[str, Path]) -> None:
    graph = onnx.load(str(precision_files[Precision.INT8.value])).graph
    big_tables = [tensor for tensor in graph.initializer if np.prod(tensor.dims) > 10_000]
    assert len(big_tables) == 3  # user, history and item tables
    eight_bit = {onnx.TensorProto.INT8, onnx.TensorProto.UINT8}
    assert {tensor.data_type for tensor in big_tables} <= eight_bit
    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= {node.op_type for node in graph.node}


def _lists(*rows: list[int]) -> np.ndarray:
    return np.array([row + list(range(100, 100 + TOP_K - len(row))) for row in rows])


@pytest.mark.parametrize(
    ("served", "same_order", "same_first", "same_items"),
    [
        pytest.param(_lists([1, 2, 3, 4, 5, 6]), 1.0, 1.0, 1.0, id="identical"),
        pytest.param(_lists([1, 2, 3, 4, 5, 7]), 0.0, 1.0, 0.0, id="sixth-differs"),
        pytest.param(_lists([1, 2, 3, 4, 5, 6])[:, ::-1], 0.0, 0.0, 1.0, id="reversed"),
        pytest.param(_lists([2, 1, 3, 4, 5, 6]), 0.0, 0.0, 1.0, id="first-two-swapped"),
    ],
)  # fmt: skip
def test_top_k_agreement_counts_requests_by_what_a_shopper_sees(
    served: np.ndarray, same_order: float, same_first: float, same_items: float
) -> None:
    fp32 = _lists([1, 2, 3, 4, 5, 6])
    agreement = top_k_agreement(np.vstack([served, fp32]), np.vstack([fp32, fp32]))
    assert FIRST_ITEMS == 5
    assert (agreement.same_order, agreement.same_first, agreement.same_items) == (
        (same_order + 1) / 2,
        (same_first + 1) / 2,
        (same_items + 1) / 2,
    )


def test_top_k_agreement_refuses_lists_of_different_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(2, 20\).*\(3, 20\)"):
        top_k_agreement(_lists([1], [2]), _lists([1], [2], [3]))
