"""The controller chart's pod runs the image the Dockerfile builds: the same command, user,
port, and a writable volume at every path the image writes to under a read-only root."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any

import helm_python as helm
import pytest
import yaml

from tests.charts.rendering import (
    Rendered,
    chart_dir,
    container,
    kube_version_floor,
    pod_spec,
    render,
)
from tests.image.dockerfile import env, exec_form, final_stage, instructions, one

CHART = "spillover-controller"


@pytest.fixture(scope="module")
def rendered() -> Iterator[Rendered]:
    chart = helm.Chart.load(chart_dir(CHART))
    try:
        yield render(chart, {}, kube_version=kube_version_floor(CHART))
    finally:
        chart.close()


@pytest.fixture(scope="module")
def deployment(rendered: Rendered) -> dict[str, Any]:
    return rendered.one("Deployment")


@pytest.fixture(scope="module")
def image() -> dict[str, Any]:
    stage = final_stage()
    return {
        "entrypoint": exec_form(one(stage, "ENTRYPOINT")),
        "cmd": exec_form(one(stage, "CMD")),
        "user": one(stage, "USER"),
        "expose": {int(port.partition("/")[0]) for port in one(stage, "EXPOSE").split()},
        "env": env(stage),
        "workdir": one(stage, "WORKDIR"),
        "from": one(stage, "FROM"),
    }


def writable_mounts(deployment: dict[str, Any]) -> set[str]:
    return {
        mount["mountPath"]
        for mount in container(deployment)["volumeMounts"]
        if not mount.get("readOnly", False)
    }


def is_under(path: str, directory: str) -> bool:
    return PurePosixPath(path).is_relative_to(PurePosixPath(directory))


def test_the_image_is_built_in_a_stage_of_its_own_and_runs_on_slim_python() -> None:
    stages = {instruction.stage for instruction in instructions()}
    assert len(stages) >= 2, "a builder stage and a runtime stage"
    assert final_stage()[0].arguments == "python:3.11-slim"


def test_the_chart_runs_what_the_image_runs_by_default(deployment, image) -> None:
    # The chart's `command` replaces ENTRYPOINT and drops CMD: equal, `docker run IMAGE` and
    # the pod start the same controller.
    assert container(deployment)["command"] == image["entrypoint"] + image["cmd"]
    assert "args" not in container(deployment)


def test_the_pod_runs_as_the_images_numeric_non_root_user(deployment, image) -> None:
    uid, _, gid = image["user"].partition(":")
    assert uid.isdigit() and gid.isdigit(), f"USER {image['user']}: runAsNonRoot needs numbers"
    security = pod_spec(deployment)["securityContext"]
    assert (security["runAsUser"], security["runAsGroup"]) == (int(uid), int(gid))
    assert security["runAsNonRoot"] is True and int(uid) != 0


def test_the_containers_ports_are_the_images(deployment, image) -> None:
    ports = {port["containerPort"] for port in container(deployment)["ports"]}
    assert ports == image["expose"]


def test_the_config_is_mounted_where_the_images_command_reads_it(deployment, image) -> None:
    command = image["cmd"]
    config_path = command[command.index("--config") + 1]
    mounts = {mount["mountPath"]: mount for mount in container(deployment)["volumeMounts"]}
    assert config_path in mounts, f"{config_path} is not mounted: {sorted(mounts)}"


def test_every_path_the_image_writes_to_is_a_writable_volume(
    rendered: Rendered, deployment, image
) -> None:
    assert container(deployment)["securityContext"]["readOnlyRootFilesystem"] is True
    assert image["env"].get("PYTHONDONTWRITEBYTECODE") == "1", "no .pyc writes at run time"
    writable = writable_mounts(deployment)
    config = yaml.safe_load(rendered.one("ConfigMap")["data"]["spillover.yaml"])
    database = config["controller"]["database"]
    for what, path in {
        "HOME": image["env"]["HOME"],
        "WORKDIR": image["workdir"],
        "the ledger": posixpath.dirname(database),
    }.items():
        assert any(is_under(path, mount) for mount in writable), (
            f"{what} {path} is on the read-only root: writable mounts are {sorted(writable)}"
        )
