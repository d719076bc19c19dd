"""What the controller image installs, without a Docker engine: the wheel built from the files
the Dockerfile copies, installed with the Dockerfile's extra into a fresh virtualenv (from the
package index, as the builder stage does), leaves out what serves and plots locally, and
`spillover controller run` from it starts, talks to a Kubernetes API and serves /metrics.

Minutes, not seconds (a wheel build and an install from the index), so `e2e`; CI runs it."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.drivers.fake_kube_api import Deployment, FakeKubeApi
from tests.image.dockerfile import DOCKERFILE, instructions

REPO = DOCKERFILE.parent
LEFT_OUT = {"onnxruntime", "nvidia-pytriton", "matplotlib", "tritonclient", "onnx"}
"""Distributions the controller image must not hold: they serve, convert or plot locally."""
NAMESPACE = "spillover"
LABELS = {"app.kubernetes.io/name": "triton-recommender"}
STARTED = re.compile(r"metrics on http://127\.0\.0\.1:(\d+)/metrics")


def builder_extras() -> str:
    """The extra the builder stage installs (its `ARG EXTRAS=...`)."""
    for instruction in instructions():
        if instruction.stage == 0 and instruction.keyword == "ARG":
            name, _, default = instruction.arguments.partition("=")
            if name == "EXTRAS":
                return default
    raise AssertionError("the Dockerfile's builder stage has no ARG EXTRAS=...")


def build_context(destination: Path) -> Path:
    """The files the builder stage COPYs from the build context, and nothing else."""
    destination.mkdir()
    for instruction in instructions():
        if instruction.stage != 0 or instruction.keyword != "COPY":
            continue
        *sources, _ = instruction.arguments.split()
        for source in sources:
            assert not source.startswith("--"), f"unexpected COPY option: {instruction}"
            origin = REPO / source.rstrip("/")
            target = destination / source.rstrip("/")
            if origin.is_dir():
                shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(origin, target)
    return destination


def run(*command: str | Path, timeout: float = 300) -> str:
    result = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{command}: {result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def controller_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("image")
    context = build_context(work / "context")
    wheels = work / "wheels"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", wheels, context)
    (wheel,) = wheels.glob("spillover-*.whl")
    venv = work / "venv"
    run(sys.executable, "-m", "venv", venv)
    run(venv / "bin" / "pip", "install", "--quiet", f"{wheel}[{builder_extras()}]", timeout=600)
    return venv


def installed(venv: Path) -> set[str]:
    listing = json.loads(run(venv / "bin" / "pip", "list", "--format", "json"))
    # Names as PEP 503 normalizes them (pip lists prometheus_client as installed).
    return {re.sub(r"[-_.]+", "-", str(row["name"])).lower() for row in listing}


def test_the_controller_install_leaves_out_serving_and_plotting(controller_venv: Path):
    present = installed(controller_venv)
    assert {"spillover", "kubernetes", "prometheus-client", "pydantic"} <= present
    assert not present & LEFT_OUT, f"the controller install pulled {sorted(present & LEFT_OUT)}"


def test_a_command_without_its_extra_says_which_to_install(controller_venv: Path):
    result = subprocess.run(
        [controller_venv / "bin" / "spillover", "model", "build"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "`spillover model` needs numpy, from the `model` extra" in result.stderr, result.stderr
    assert "pip install 'spillover[model]'" in result.stderr
    assert "Traceback" not in result.stderr


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def kube_api() -> Iterator[FakeKubeApi]:
    with FakeKubeApi(token="controller-token") as api:
        api.add_deployment(Deployment(NAMESPACE, "triton", replicas=1, match_labels=LABELS))
        yield api


def controller_config(tmp_path: Path, kube_api: FakeKubeApi) -> Path:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": kube_api.url}}],
                "users": [{"name": "controller", "user": {"token": "controller-token"}}],
                "contexts": [
                    {"name": "fake", "context": {"cluster": "fake", "user": "controller"}}
                ],
                "current-context": "fake",
            }
        )
    )
    config = {
        "pools": [
            {
                "name": "private",
                "role": "private",
                "driver": "kubernetes",
                "capacity_type": "owned",
                "min_replicas": 1,
                "max_replicas": 2,
                "kubernetes": {
                    "namespace": NAMESPACE,
                    "deployment": "triton",
                    "kubeconfig": str(kubeconfig),
                },
                "price": {"usd_per_replica_hour": 1.0, "source": "test"},
            }
        ],
        "policy": {"tick_seconds": 0.5},
        # No gateway listens there: the controller must start and serve metrics regardless.
        "gateway": {"runtime_api": f"127.0.0.1:{_closed_port()}"},
        "controller": {
            "database": str(tmp_path / "data" / "controller.db"),
            "metrics_host": "127.0.0.1",
            "metrics_port": 0,
        },
    }
    path = tmp_path / "spillover.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def wait_for_metrics_port(log: Path, process: subprocess.Popen[bytes], seconds: float) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = STARTED.search(log.read_text())
        if found:
            return int(found[1])
        assert process.poll() is None, f"controller exited: {log.read_text()[-3000:]}"
        time.sleep(0.2)
    raise AssertionError(f"no metrics address logged in {seconds}s: {log.read_text()[-3000:]}")


def test_the_installed_controller_runs_and_serves_metrics(
    controller_venv: Path, kube_api: FakeKubeApi, tmp_path: Path
):
    config = controller_config(tmp_path, kube_api)
    home = tmp_path / "home"
    home.mkdir()
    log = tmp_path / "controller.log"
    # Only the venv's own interpreter and a HOME of its own, as in the image.
    environment = {"PATH": f"{controller_venv / 'bin'}:/usr/bin:/bin", "HOME": str(home)}
    environment["PYTHONDONTWRITEBYTECODE"] = "1"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [controller_venv / "bin" / "spillover", "controller", "run", "--config", config],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=home,
            start_new_session=True,
        )
    try:
        port = wait_for_metrics_port(log, process, seconds=60)
        deadline = time.monotonic() + 30
        while not kube_api.requested("get_scale") and time.monotonic() < deadline:
            time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            assert reply.status == 200
            body = reply.read().decode()
        assert "spillover_pool_replicas" in body, body[:2000]
        assert kube_api.requested("get_scale"), "the controller never read the pool's scale"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    assert process.returncode == 0, log.read_text()[-3000:]
    assert "controller stopped" in log.read_text()
