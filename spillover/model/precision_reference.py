"""What each precision's graph computes, in numpy: the reference its ONNX file is tested against.

Every precision is the fp32 forward pass of ``reference`` with values rounded where
the converted graph rounds them:

* fp16: every weight, the user vector and the scores are float16 values (the
  graph computes in float16 and casts the scores back to float32 at the end).
* int8: the Gather tables hold uint8 codes with one scale and zero point each, the
  item table int8 codes with one scale per item (zero point 0), and the user vector
  is quantized per batch to uint8 from the batch's own range, as ONNX's
  DynamicQuantizeLinear defines it. An integer MatMul of codes times the two scales
  equals the float MatMul of the dequantized values, so the reference multiplies
  those.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from spillover.model.precision import Precision
from spillover.model.reference import (
    Float32Array,
    Int64Array,
    ModelWeights,
    score_all_items,
    top_k,
    user_vectors,
)

UINT8_LEVELS = 255
"""uint8 codes span 0..255: 255 steps between the range's ends."""

INT8_SYMMETRIC_MAX = 127
"""Symmetric int8 codes span -127..127, so zero is exact and the range is even."""


class Tolerance(NamedTuple):
    """How far a served score may be from its reference: atol + rtol x |reference|."""

    rtol: float
    atol: float

    def bound(self, reference: Float32Array) -> Float32Array:
        return self.atol + self.rtol * np.abs(reference)


SCORE_TOLERANCE = {
    Precision.FP32: Tolerance(rtol=0.0, atol=1e-4),
    Precision.FP16: Tolerance(rtol=2.0**-9, atol=1e-3),
    Precision.INT8: Tolerance(rtol=0.0, atol=1e-2),
}
"""Per precision, what is left once the reference rounds where the graph rounds.

fp32: float summation order. fp16: ONNX Runtime's float16 kernels round
intermediate sums where numpy does not; two float16 steps (2^-10 of the value
each) cover it. int8: the codes and their integer products are exact and the
float32 rescale agrees to ~1e-6; but a user-vector value sitting on a rounding
boundary can get the next code in one and not the other, which moves a score by
one code step (~0.01 here) times an item weight (below 1)."""


def weights_as_served(weights: ModelWeights, precision: Precision) -> ModelWeights:
    """The weights with the values the converted graph stores (fp32: unchanged)."""
    if precision is Precision.FP32:
        return weights
    if precision is Precision.FP16:
        return replace(
            weights,
            user_embeddings=_fp16(weights.user_embeddings),
            history_embeddings=_fp16(weights.history_embeddings),
            item_embeddings=_fp16(weights.item_embeddings),
            item_bias=_fp16(weights.item_bias),
        )
    return replace(
        weights,
        user_embeddings=_uint8_round_trip(weights.user_embeddings),
        history_embeddings=_uint8_round_trip(weights.history_embeddings),
        # item_embeddings is [n_items, dim]: one scale per item is one per row here.
        item_embeddings=_int8_per_row_round_trip(weights.item_embeddings),
    )


def recommend_at(
    precision: Precision,
    weights: ModelWeights,
    user_ids: npt.ArrayLike,
    histories: npt.ArrayLike,
) -> tuple[Int64Array, Float32Array]:
    """Top-K (item_ids, scores) per request as the ``precision`` graph serves them.

    ``weights`` are the fp32 ones; the batch is one Triton execution (int8's
    run-time scale is the whole batch's).
    """
    return top_k(scores_at(precision, weights, user_ids, histories))


def scores_at(
    precision: Precision,
    weights: ModelWeights,
    user_ids: npt.ArrayLike,
    histories: npt.ArrayLike,
) -> Float32Array:
    """Every item's score per request, [batch, n_items], at ``precision``."""
    served = weights_as_served(weights, precision)
    vectors = user_vectors(served, user_ids, np.asarray(histories, dtype=np.int64))
    if precision is Precision.FP16:
        return _fp16(score_all_items(served, _fp16(vectors)))
    if precision is Precision.INT8:
        return score_all_items(served, _uint8_round_trip(vectors))
    return score_all_items(served, vectors)


def _fp16(values: Float32Array) -> Float32Array:
    return values.astype(np.float16).astype(np.float32)


def _uint8_round_trip(values: Float32Array) -> Float32Array:
    """Quantize to uint8 over the range of all ``values`` (0 included), then dequantize."""
    low = min(float(values.min(initial=0.0)), 0.0)
    high = max(float(values.max(initial=0.0)), 0.0)
    scale = np.float32((high - low) / UINT8_LEVELS) if high > low else np.float32(1.0)
    zero_point = np.clip(np.rint(-low / scale), 0, UINT8_LEVELS)
    codes = np.clip(np.rint(values / scale) + zero_point, 0, UINT8_LEVELS)
    return ((codes - zero_point) * scale).astype(np.float32)


def _int8_per_row_round_trip(values: Float32Array) -> Float32Array:
    """Symmetric int8 with one scale per row (its largest magnitude maps to 127)."""
    largest = np.abs(values).max(axis=1, keepdims=True)
    scale = np.where(largest > 0, largest / INT8_SYMMETRIC_MAX, 1.0).astype(np.float32)
    codes = np.clip(np.rint(values / scale), -INT8_SYMMETRIC_MAX, INT8_SYMMETRIC_MAX)
    return (codes * scale).astype(np.float32)
