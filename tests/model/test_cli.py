"""`spillover model build` from the command line: clear errors, a complete model repository."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime
import pytest

from spillover.model import build
from spillover.model.build import ensure_model
from spillover.model.cli import register
from spillover.model.contract import INPUT_HISTORY, INPUT_USER_ID, PAD_ITEM, TOP_K
from spillover.model.precision import Precision
from spillover.model.synth import SynthConfig
from spillover.model.train import TrainConfig
from spillover.model.triton_config import render_cluster_config

SMALL_BUILD = ["--users", "300", "--items", "120", "--categories", "6", "--epochs", "1"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spillover")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return args.func(args)


@pytest.mark.parametrize(
    ("flags", "named_flag"),
    [
        pytest.param(["--users", "0"], "--users", id="zero-users"),
        pytest.param(["--items", "5"], "--items", id="fewer-items-than-top-k"),
        pytest.param(["--categories", "-2"], "--categories", id="negative-categories"),
        pytest.param(["--epochs", "many"], "--epochs", id="epochs-not-a-number"),
        pytest.param(["--dim", "0"], "--dim", id="zero-dim"),
        pytest.param(["--seed", "-1"], "--seed", id="negative-seed"),
        pytest.param(["--items", "30", "--categories", "40"], "--categories",
                     id="more-categories-than-items"),
        pytest.param(["--precision", "int4"], "--precision", id="unknown-precision"),
        pytest.param(["--tensorrt"], "--tensorrt", id="tensorrt-without-fp16"),
        pytest.param(["--precision", "int8", "--tensorrt"], "--tensorrt",
                     id="tensorrt-with-int8"),
    ],
)  # fmt: skip
def test_bad_values_give_a_usage_error_naming_the_flag(
    flags: list[str], named_flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _run(["model", "build", "--repo", str(tmp_path), *flags])
    assert exit_info.value.code == 2
    assert f"argument {named_flag}" in capsys.readouterr().err
    assert not (tmp_path / "recommender").exists(), "nothing is built on bad input"


def test_build_writes_a_servable_repository_and_prints_the_metrics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(["model", "build", "--repo", str(tmp_path), *SMALL_BUILD]) == 0

    version_dir = tmp_path / "recommender" / "1"
    assert (tmp_path / "recommender" / "config.pbtxt").read_text() == render_cluster_config()
    metrics = json.loads((version_dir / "metrics.json").read_text())
    assert metrics["sizes"]["items"] == 120 and metrics["sizes"]["users"] == 300
    assert 0 < metrics["popularity"]["recall"] < 1 and 0 < metrics["model"]["recall"] <= 1
    assert metrics["recall_ratio"] == pytest.approx(
        metrics["model"]["recall"] / metrics["popularity"]["recall"], rel=1e-3
    )
    catalog = json.loads((version_dir / "catalog.json").read_text())
    assert len(catalog["item_category"]) == 120
    assert catalog["categories"][:2] == ["electronics", "books"] and len(catalog["categories"]) == 6

    session = onnxruntime.InferenceSession(str(version_dir / "model.onnx"))
    item_ids, _ = session.run(
        None, {INPUT_USER_ID: np.array([[7]]), INPUT_HISTORY: np.array([[3, PAD_ITEM]])}
    )
    assert item_ids.shape == (1, TOP_K)

    summary = capsys.readouterr().out
    assert f"Recall@{TOP_K}" in summary and "popularity baseline" in summary
    assert f"model / popularity Recall@{TOP_K}: " in summary and "precision fp32: " in summary


def test_int8_build_records_its_size_and_quality_beside_fp32(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        _run(["model", "build", "--repo", str(tmp_path), *SMALL_BUILD, "--precision", "int8"]) == 0
    )

    model_file = build.onnx_path(tmp_path)
    precision = json.loads((model_file.parent / "metrics.json").read_text())["precision"]
    assert precision["name"] == "int8" and build.built_precision(tmp_path) is Precision.INT8
    assert precision["onnx_bytes"] == model_file.stat().st_size
    # 30% is the goal at 100k items; at 120 the scales and constants weigh more.
    assert precision["onnx_bytes"] < 0.4 * precision["fp32_onnx_bytes"]
    assert precision["recall_vs_fp32"] == pytest.approx(
        precision["served"]["recall"] / precision["fp32"]["recall"], rel=1e-3
    )
    assert set(precision["top_k_agreement_with_fp32"]) == {"same_order", "same_first", "same_items"}
    assert (tmp_path / "recommender" / "config.pbtxt").read_text() == render_cluster_config()
    summary = capsys.readouterr().out
    assert "precision int8:" in summary and "of fp32's" in summary


def test_fp16_build_with_tensorrt_writes_the_accelerator(tmp_path: Path) -> None:
    flags = [*SMALL_BUILD, "--precision", "fp16", "--tensorrt"]
    assert _run(["model", "build", "--repo", str(tmp_path), *flags]) == 0
    config = (tmp_path / "recommender" / "config.pbtxt").read_text()
    assert config == render_cluster_config(tensorrt_fp16=True)


def test_same_seed_builds_the_same_model(tmp_path: Path) -> None:
    _run(["model", "build", "--repo", str(tmp_path / "a"), *SMALL_BUILD, "--seed", "3"])
    _run(["model", "build", "--repo", str(tmp_path / "b"), *SMALL_BUILD, "--seed", "3"])
    first, second = (build.onnx_path(tmp_path / name).read_bytes() for name in ("a", "b"))
    assert first == second


def test_ensure_model_reuses_an_existing_model(tmp_path: Path, monkeypatch) -> None:
    _run(["model", "build", "--repo", str(tmp_path), *SMALL_BUILD])
    monkeypatch.setattr(build, "build_model", _fail_if_called)
    assert ensure_model(tmp_path) == build.onnx_path(tmp_path)


def test_ensure_model_builds_with_defaults_when_missing(tmp_path: Path, monkeypatch) -> None:
    calls = []
    real_build = build.build_model

    def shrunk_build(
        repo_dir: Path, synth: SynthConfig, train: TrainConfig, precision: Precision
    ) -> dict:
        # Record the defaults asked for, then build something seconds-sized instead.
        calls.append((repo_dir, synth, train, precision))
        tiny = replace(synth, n_users=300, n_items=120, n_categories=6)
        return real_build(repo_dir, tiny, replace(train, epochs=1), precision)

    monkeypatch.setattr(build, "build_model", shrunk_build)
    path = ensure_model(tmp_path)
    assert path == tmp_path / "recommender" / "1" / "model.onnx" and path.exists()
    assert calls == [(tmp_path, SynthConfig(), TrainConfig(), Precision.FP32)]
    ensure_model(tmp_path, precision=Precision.INT8)
    assert calls[1][3] is Precision.INT8, "a build at another precision is not reused"
    assert build.built_precision(tmp_path) is Precision.INT8
    ensure_model(tmp_path)
    assert len(calls) == 2, "without a precision asked for, the int8 build serves as it is"


def test_ensure_model_rebuilds_a_half_written_build(tmp_path: Path, monkeypatch) -> None:
    _run(["model", "build", "--repo", str(tmp_path), *SMALL_BUILD])
    (build.onnx_path(tmp_path).parent / build.METRICS_FILE).unlink()  # killed before the end
    rebuilt = []
    real_build = build.build_model

    def small_build(
        repo_dir: Path, synth: SynthConfig, train: TrainConfig, precision: Precision
    ) -> dict:
        rebuilt.append(repo_dir)
        tiny = replace(synth, n_users=300, n_items=120, n_categories=6)
        return real_build(repo_dir, tiny, replace(train, epochs=1), precision)

    monkeypatch.setattr(build, "build_model", small_build)
    ensure_model(tmp_path)
    assert rebuilt == [tmp_path]
    assert build.model_sizes(tmp_path) == (300, 120)


def _fail_if_called(*args: object) -> None:
    raise AssertionError("ensure_model rebuilt a model that was already there")
