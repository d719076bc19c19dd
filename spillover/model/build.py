"""`spillover model build`: generate, train, evaluate and export into a Triton model repository.

Layout written under the repository directory::

    recommender/config.pbtxt       cluster config (ONNX Runtime on GPU), tracked in git
    recommender/1/model.onnx       the graph both backends serve, at the chosen precision
    recommender/1/metrics.json     Recall/NDCG of model vs popularity, sizes, seeds, timings,
                                   and the served precision beside fp32 on the same held-out set
    recommender/1/catalog.json     category names and each item's category, for demos

Every precision trains and evaluates in fp32 first; fp16 and int8 are conversions of
that fp32 graph (see ``precision``), so one seed gives the same model at each.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from spillover.model import onnx_export, triton_config
from spillover.model.contract import MODEL_NAME, TOP_K
from spillover.model.evaluate import Evaluation, HoldoutSplit, evaluate, split_last_clicks
from spillover.model.precision import Precision, convert
from spillover.model.precision_eval import FIRST_ITEMS, compare_with_fp32
from spillover.model.synth import InteractionLog, SynthConfig, generate
from spillover.model.train import TrainConfig, TrainResult
from spillover.model.train import train as fit

logger = logging.getLogger(__name__)

MODEL_VERSION = "1"
"""The one model version the build writes."""

DEFAULT_REPO = Path("model_repo")
"""The project's model repository, relative to where commands run."""

METRICS_FILE = "metrics.json"
"""Evaluation results and sizes, beside the model file."""

CATEGORY_NAMES = (
    "electronics", "books", "fashion", "home", "kitchen", "beauty", "toys", "sports",
    "garden", "grocery", "health", "automotive", "music", "movies", "games", "office",
    "pets", "baby", "jewelry", "shoes", "tools", "outdoors", "crafts", "furniture",
    "lighting", "phones", "computers", "cameras", "watches", "luggage", "stationery",
    "appliances", "bedding", "snacks", "beverages", "fitness", "cycling", "camping",
    "party", "travel",
)  # fmt: skip
"""Readable names for the first categories; any beyond get ``category-<n>``."""


def onnx_path(repo_dir: Path) -> Path:
    return repo_dir / MODEL_NAME / MODEL_VERSION / "model.onnx"


def config_path(repo_dir: Path) -> Path:
    return repo_dir / MODEL_NAME / "config.pbtxt"


def category_names(n_categories: int) -> list[str]:
    return [
        CATEGORY_NAMES[index] if index < len(CATEGORY_NAMES) else f"category-{index}"
        for index in range(n_categories)
    ]


def build_model(
    repo_dir: Path,
    synth: SynthConfig,
    train: TrainConfig,
    precision: Precision = Precision.FP32,
    tensorrt_fp16: bool = False,
) -> dict[str, Any]:
    """Run every stage and write the model repository; returns what metrics.json holds.

    ``tensorrt_fp16`` adds ONNX Runtime's TensorRT accelerator at FP16 to the cluster
    config (fp16 builds only; see ``triton_config.render_cluster_config``).
    """
    if tensorrt_fp16 and precision is not Precision.FP16:
        raise ValueError(f"the TensorRT FP16 accelerator goes with fp16 builds, not {precision}")
    timings: dict[str, float] = {}
    with _timed(timings, "generate"):
        log = generate(synth)
        split = split_last_clicks(log)
    with _timed(timings, "train"):
        trained = fit(split.train_log, train)
    with _timed(timings, "evaluate"):
        evaluation = evaluate(trained.weights, split)
    model_file = onnx_path(repo_dir)
    with tempfile.TemporaryDirectory(prefix="spillover-build-") as scratch:
        fp32_file = Path(scratch) / "fp32.onnx"
        with _timed(timings, "export"):
            onnx_export.export(trained.weights, fp32_file)
            _write_atomically(model_file, lambda path: convert(fp32_file, precision, path))
            _write_cluster_config(repo_dir, model_file, tensorrt_fp16)
            _write_json(model_file.parent / "catalog.json", _catalog(log))
        with _timed(timings, "compare_precision"):
            comparison = compare_with_fp32(precision, model_file, fp32_file, split)
    timings["total"] = sum(timings.values())
    metrics = _metrics(log, split, trained, evaluation, synth, train, timings)
    metrics["onnx_bytes"] = comparison.onnx_bytes
    metrics["precision"] = comparison.as_json()
    _write_json(model_file.parent / METRICS_FILE, metrics)
    return metrics


def ensure_model(
    repo_dir: Path, items: int | None = None, precision: Precision | None = None
) -> Path:
    """The ONNX file in ``repo_dir``, built with the default settings unless complete.

    metrics.json is written last, so a build interrupted half-way is built again.
    ``precision`` None takes whatever precision was built (fp32 when building); a
    precision asked for rebuilds a build at another one, or from before precisions
    (it has no comparison with fp32). ``items`` overrides the default catalog size
    of a build this call makes.
    """
    path = onnx_path(repo_dir)
    complete = (path.parent / METRICS_FILE).exists()
    if complete and (precision is None or built_precision(repo_dir) is precision):
        return path
    to_build = Precision.FP32 if precision is None else precision
    synth = SynthConfig() if items is None else SynthConfig(n_items=items)
    logger.info("no %s model at %s; building it with %d items", to_build, path, synth.n_items)
    logger.info("%s", format_summary(build_model(repo_dir, synth, TrainConfig(), to_build)))
    return path


def built_metrics(repo_dir: Path) -> dict[str, Any]:
    """What the build in ``repo_dir`` wrote to metrics.json."""
    metrics: dict[str, Any] = json.loads((onnx_path(repo_dir).parent / METRICS_FILE).read_text())
    return metrics


def built_precision(repo_dir: Path) -> Precision | None:
    """The precision of the model in ``repo_dir``; None for a build from before precisions,
    which recorded no comparison with fp32."""
    precision = built_metrics(repo_dir).get("precision")
    return None if precision is None else Precision(precision["name"])


def model_sizes(repo_dir: Path) -> tuple[int, int]:
    """(users, items) of the model built in ``repo_dir``, from its metrics file."""
    sizes = built_metrics(repo_dir)["sizes"]
    return int(sizes["users"]), int(sizes["items"])


def format_summary(metrics: dict[str, Any]) -> str:
    """A few lines for people: sizes, time per stage, the metric table and the ratio."""
    sizes = metrics["sizes"]
    timings = metrics["timings_seconds"]
    rows = [
        f"{label:<22}{metrics[key]['recall']:>10.4f}{metrics[key]['ndcg']:>10.4f}"
        for label, key in (
            ("two-tower model", "model"),
            ("  unknown user ids", "history_only"),
            ("popularity baseline", "popularity"),
        )
    ]
    return "\n".join(
        [
            f"data: {sizes['users']} users, {sizes['items']} items, "
            f"{sizes['categories']} categories, {sizes['interactions']} clicks "
            f"({metrics['evaluated_users']} users evaluated on their last click)",
            "time: " + ", ".join(f"{stage} {seconds:.1f}s" for stage, seconds in timings.items()),
            f"{'':<22}{f'Recall@{TOP_K}':>10}{f'NDCG@{TOP_K}':>10}",
            *rows,
            f"model / popularity Recall@{TOP_K}: {metrics['recall_ratio']:.2f}x",
            *_precision_summary(metrics["precision"]),
        ]
    )


def _precision_summary(precision: dict[str, Any]) -> list[str]:
    """Size and quality of the served precision beside fp32 (nothing to add for fp32)."""
    if precision["name"] == Precision.FP32.value:
        return [f"precision fp32: {precision['onnx_bytes'] / 1e6:.1f} MB"]
    agreement = precision["top_k_agreement_with_fp32"]
    return [
        f"precision {precision['name']}: {precision['onnx_bytes'] / 1e6:.1f} MB, "
        f"{precision['size_vs_fp32']:.0%} of fp32's {precision['fp32_onnx_bytes'] / 1e6:.1f} MB",
        f"  Recall@{TOP_K} {precision['served']['recall']:.4f} vs fp32 "
        f"{precision['fp32']['recall']:.4f} ({precision['recall_vs_fp32']:.1%}); "
        f"NDCG@{TOP_K} {precision['served']['ndcg']:.4f} vs {precision['fp32']['ndcg']:.4f}",
        f"  same top-{TOP_K} as fp32: in order {agreement['same_order']:.0%}, "
        f"first {FIRST_ITEMS} in order {agreement['same_first']:.0%}, "
        f"as a set {agreement['same_items']:.0%} of held-out requests",
    ]


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    timings[stage] = round(time.perf_counter() - started, 3)


def _write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Write beside ``path``, then rename: Triton polling the repository never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    write(partial)
    os.replace(partial, path)


def _write_cluster_config(repo_dir: Path, model_file: Path, tensorrt_fp16: bool) -> None:
    text = triton_config.render_cluster_config(tensorrt_fp16=tensorrt_fp16)
    triton_config.validate_against_onnx(triton_config.parse_config(text), model_file)
    _write_atomically(config_path(repo_dir), lambda path: path.write_text(text))


def _write_json(path: Path, content: dict[str, Any]) -> None:
    _write_atomically(
        path, lambda partial: partial.write_text(json.dumps(content, indent=2) + "\n")
    )


def _catalog(log: InteractionLog) -> dict[str, Any]:
    return {
        "categories": category_names(log.n_categories),
        "item_category": log.item_categories.tolist(),
    }


def _metrics(
    log: InteractionLog,
    split: HoldoutSplit,
    trained: TrainResult,
    evaluation: Evaluation,
    synth_config: SynthConfig,
    train_config: TrainConfig,
    timings: dict[str, float],
) -> dict[str, Any]:
    return {
        "k": TOP_K,
        "model": asdict(evaluation.model),
        "history_only": asdict(evaluation.history_only),
        "popularity": asdict(evaluation.popularity),
        "recall_ratio": round(evaluation.recall_ratio, 4),
        "evaluated_users": evaluation.n_users,
        "sizes": {
            "users": synth_config.n_users,
            "items": synth_config.n_items,
            "categories": synth_config.n_categories,
            "interactions": len(log),
            "train_interactions": len(split.train_log),
            "dim": train_config.dim,
        },
        "seed": synth_config.seed,
        "train_seed": train_config.seed,
        "epoch_losses": [round(loss, 4) for loss in trained.epoch_losses],
        "synth_config": asdict(synth_config),
        "train_config": asdict(train_config),
        "timings_seconds": timings,
    }
