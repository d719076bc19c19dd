"""Shared small models (one training run serves the model tests, one build the serving
tests) and the real local stack the end-to-end tests run on."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import onnxruntime
import pytest

from spillover.local.stack import LocalStack
from spillover.model.build import build_model, onnx_path
from spillover.model.evaluate import HoldoutSplit, split_last_clicks
from spillover.model.onnx_export import export
from spillover.model.precision import Precision, convert
from spillover.model.synth import InteractionLog, SynthConfig, generate
from spillover.model.train import TrainConfig, TrainResult, train
from tests.support import processes_with_marker, running_local_stack

REAL_SERVER_FIXTURES = {"model_file", "launch", "live_gateway"}
"""Fixtures that start a real tritonserver (every one serves `model_file`) or HAProxy."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `e2e` every test that runs real servers, so `-m "not e2e"` is the quick
    suite; CI runs both."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & REAL_SERVER_FIXTURES or item.path.stem.endswith("_e2e"):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
def no_process_outlives_its_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves a server running from its tmp_path, after killing it."""
    uses_tmp_path = "tmp_path" in request.fixturenames
    # Asked for now, so tmp_path is torn down after this check and not before it.
    tmp_path = request.getfixturevalue("tmp_path") if uses_tmp_path else None
    yield
    if tmp_path is None:
        return
    leftovers = processes_with_marker(str(tmp_path))
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(os.getpgid(pid), signal.SIGKILL)
    if leftovers:
        pytest.fail(f"processes left running by the test (now killed): {leftovers}")


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


@pytest.fixture(scope="session")
def precision_files(onnx_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The small model's graph at every precision, keyed by precision name."""
    directory = tmp_path_factory.mktemp("precisions")
    files = {}
    for precision in Precision:
        files[precision.value] = directory / f"{precision}.onnx"
        convert(onnx_file, precision, files[precision.value])
    return files


@pytest.fixture(scope="session")
def precision_sessions(precision_files: dict[str, Path]) -> dict[str, onnxruntime.InferenceSession]:
    return {
        name: onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        for name, path in precision_files.items()
    }


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


@pytest.fixture
def running_stack(tmp_path: Path, model_file: Path) -> Iterator[LocalStack]:
    """1 private + 1 burst replica behind the gateway, on free loopback ports; always torn
    down."""
    with running_local_stack(tmp_path / "run", model_file) as stack:
        yield stack


@pytest.fixture(scope="session")
def model_repo_at(
    model_repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[Precision], Path]:
    """The serving tests' model built at a precision (same seed: same weights), once each."""
    built = {Precision.FP32: model_repo}

    def at(precision: Precision) -> Path:
        if precision not in built:
            repo = tmp_path_factory.mktemp(f"model_repo_{precision}")
            build_model(repo, SERVING_SYNTH, TrainConfig(epochs=2), precision)
            built[precision] = repo
        return built[precision]

    return at
