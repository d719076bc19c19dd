"""A built precision against fp32 on the same held-out clicks: quality, agreement and size.

Both graphs are run through ONNX Runtime, in batches of the largest size Triton's
dynamic batcher forms (int8's run-time scale is taken per batch), so the figures
describe what a replica serves.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime

from spillover.model.contract import (
    INPUT_HISTORY,
    INPUT_USER_ID,
    MAX_BATCH_SIZE,
    OUTPUT_ITEM_IDS,
    TOP_K,
)
from spillover.model.evaluate import HoldoutSplit, RankingMetrics, ranking_metrics
from spillover.model.precision import Precision
from spillover.model.reference import Int64Array

FIRST_ITEMS = 5
"""The head of the list a shopper sees first; its order is compared on its own."""


@dataclass(frozen=True)
class TopKAgreement:
    """How often a precision's top-K is fp32's, over the same requests."""

    same_order: float
    """Share of requests whose TOP_K items come back in exactly fp32's order."""

    same_first: float
    """Share of requests whose first FIRST_ITEMS items are fp32's, in fp32's order."""

    same_items: float
    """Share of requests whose TOP_K items are fp32's, in any order."""


@dataclass(frozen=True)
class PrecisionComparison:
    """One built precision beside fp32 on the same held-out set."""

    precision: Precision
    onnx_bytes: int
    """Size of the served model file on disk."""
    fp32_onnx_bytes: int
    """Size of the fp32 graph it was converted from."""
    served: RankingMetrics
    """Recall/NDCG at TOP_K of the served graph."""
    fp32: RankingMetrics
    """Recall/NDCG at TOP_K of the fp32 graph."""
    agreement: TopKAgreement

    @property
    def size_vs_fp32(self) -> float:
        return self.onnx_bytes / self.fp32_onnx_bytes

    @property
    def recall_vs_fp32(self) -> float:
        return self.served.recall / self.fp32.recall if self.fp32.recall else float("nan")

    def as_json(self) -> dict[str, Any]:
        """The ``precision`` block of metrics.json."""
        return {
            "name": self.precision.value,
            "onnx_bytes": self.onnx_bytes,
            "fp32_onnx_bytes": self.fp32_onnx_bytes,
            "size_vs_fp32": round(self.size_vs_fp32, 4),
            "served": asdict(self.served),
            "fp32": asdict(self.fp32),
            "recall_vs_fp32": round(self.recall_vs_fp32, 4),
            "top_k_agreement_with_fp32": asdict(self.agreement),
        }


def compare_with_fp32(
    precision: Precision, model_file: Path, fp32_file: Path, split: HoldoutSplit
) -> PrecisionComparison:
    """Rank the held-out users with both graphs and compare (an fp32 build is ranked once)."""
    served_ids = rank_with_onnx(model_file, split.users, split.histories)
    if precision is Precision.FP32:
        fp32_ids = served_ids
    else:
        fp32_ids = rank_with_onnx(fp32_file, split.users, split.histories)
    return PrecisionComparison(
        precision=precision,
        onnx_bytes=model_file.stat().st_size,
        fp32_onnx_bytes=fp32_file.stat().st_size,
        served=ranking_metrics(served_ids, split.targets),
        fp32=ranking_metrics(fp32_ids, split.targets),
        agreement=top_k_agreement(served_ids, fp32_ids),
    )


def rank_with_onnx(model_file: Path, users: Int64Array, histories: Int64Array) -> Int64Array:
    """[len(users), TOP_K] item ids from the ONNX graph, MAX_BATCH_SIZE requests per run."""
    session = onnxruntime.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    chunks = [
        session.run(
            [OUTPUT_ITEM_IDS],
            {
                INPUT_USER_ID: users[start : start + MAX_BATCH_SIZE, None],
                INPUT_HISTORY: histories[start : start + MAX_BATCH_SIZE],
            },
        )[0]
        for start in range(0, users.size, MAX_BATCH_SIZE)
    ]
    return np.concatenate(chunks) if chunks else np.empty((0, TOP_K), dtype=np.int64)


def top_k_agreement(item_ids: Int64Array, fp32_item_ids: Int64Array) -> TopKAgreement:
    """Shares of requests (rows) on which ``item_ids`` agree with fp32's lists."""
    if item_ids.shape != fp32_item_ids.shape or item_ids.shape[0] == 0:
        raise ValueError(
            f"need two equal, non-empty [requests, k] arrays, got {item_ids.shape} "
            f"and {fp32_item_ids.shape}"
        )
    same_items = np.sort(item_ids, axis=1) == np.sort(fp32_item_ids, axis=1)
    return TopKAgreement(
        same_order=float((item_ids == fp32_item_ids).all(axis=1).mean()),
        same_first=float(
            (item_ids[:, :FIRST_ITEMS] == fp32_item_ids[:, :FIRST_ITEMS]).all(axis=1).mean()
        ),
        same_items=float(same_items.all(axis=1).mean()),
    )
