"""Shared small models: one training run serves the model tests, one build the serving tests."""

from __future__ import annotations

from pathlib import Path

import onnxruntime
import pytest

from spillover.model.build import build_model, onnx_path
from spillover.model.evaluate import HoldoutSplit, split_last_clicks
from spillover.model.onnx_export import export
from spillover.model.synth import InteractionLog, SynthConfig, generate
from spillover.model.train import TrainConfig, TrainResult, train

SMALL_SYNTH = SynthConfig(n_users=1500, n_items=600, n_categories=24, seed=7)
"""Small enough to train in seconds, with enough categories that popularity is beatable."""

SMALL_TRAIN = TrainConfig(epochs=3, seed=7)


@pytest.fixture(scope="session")
def small_log() -> InteractionLog:
    return generate(SMALL_SYNTH)


@pytest.fixture(scope="session")
def small_split(small_log: InteractionLog) -> HoldoutSplit:
    return split_last_clicks(small_log)


@pytest.fixture(scope="session")
def trained(small_split: HoldoutSplit) -> TrainResult:
    return train(small_split.train_log, SMALL_TRAIN)


@pytest.fixture(scope="session")
def onnx_file(trained: TrainResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export(trained.weights, tmp_path_factory.mktemp("onnx") / "model.onnx")


@pytest.fixture(scope="session")
def onnx_session(onnx_file: Path) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])


SERVING_SYNTH = SynthConfig(n_users=400, n_items=1500, n_categories=8)
"""The model the end-to-end tests serve: a full build (ONNX, catalog, metrics) in seconds."""


@pytest.fixture(scope="session")
def model_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("model_repo")
    build_model(repo, SERVING_SYNTH, TrainConfig(epochs=2))
    return repo


@pytest.fixture(scope="session")
def model_file(model_repo: Path) -> Path:
    return onnx_path(model_repo)
