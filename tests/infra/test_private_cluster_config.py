"""privateMachines: a stack that cannot build its cluster stops before anything is created."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from settings import StackConfigError
from tests.infra.conftest import RecordingMocks, deploy, read_settings, stack_config
from tests.infra.machines import (
    CPU_AGENT,
    GPU_AGENTS,
    IMAGES_SHA256,
    MACHINES,
    SERVERS,
    machine_stack,
)


def without(machine: dict[str, Any], field: str) -> dict[str, Any]:
    return {key: value for key, value in machine.items() if key != field}


BAD_MACHINES = [
    pytest.param(
        {"privateMachines": [*SERVERS, without(GPU_AGENTS[0], "gpus"), GPU_AGENTS[1]]},
        "privateMachines[3].gpus",
        "is not set (0 for a machine without GPUs)",
        id="gpus-not-declared",
    ),
    pytest.param(
        {"privateMachines": [*SERVERS, CPU_AGENT]},
        "privateMachines",
        "declares no GPUs",
        id="no-gpu-machine",
    ),
    pytest.param(
        {"privateMachines": [*SERVERS, GPU_AGENTS[0]], "privateGpuReplicas": 2},
        "privateMachines",
        "declares 1 GPUs, fewer than privateGpuReplicas x gpusPerReplica (2)",
        id="too-few-gpus",
    ),
    pytest.param(
        {"privateMachines": [*SERVERS, {**GPU_AGENTS[0], "gpus": -1}, GPU_AGENTS[1]]},
        "privateMachines[3].gpus",
        "must be a whole number of GPUs",
        id="negative-gpus",
    ),
    pytest.param(
        {"privateMachines": [*MACHINES, {**CPU_AGENT, "name": "cpu-2"}]},
        "privateMachines[*].host",
        "10.0.0.31 is listed 2 times",
        id="duplicate-host",
    ),
    pytest.param(
        {"privateMachines": [*MACHINES, {**CPU_AGENT, "host": "10.0.0.32"}]},
        "privateMachines[*].name",
        "cpu-1 is listed 2 times",
        id="duplicate-name",
    ),
    pytest.param(
        {"privateMachines": [*SERVERS[:2], *GPU_AGENTS]},
        "privateMachines",
        "has 2 servers: an HA control plane (embedded etcd) needs an odd number",
        id="even-servers",
    ),
    pytest.param(
        {"privateMachines": GPU_AGENTS},
        "privateMachines",
        "has no machine with role server",
        id="no-server",
    ),
    pytest.param(
        {"privateMachines": [*MACHINES[:-1], {**CPU_AGENT, "role": "worker"}]},
        "privateMachines[5].role",
        "must be server or agent, got 'worker'",
        id="unknown-role",
    ),
    pytest.param(
        {"privateMachines": [*MACHINES[:-1], {**CPU_AGENT, "gpu": 1}]},
        "privateMachines[5].gpu",
        "is not a machine field",
        id="misspelt-field",
    ),
    pytest.param(
        {"privateMachines": [*MACHINES[:-1], {**CPU_AGENT, "port": 70000}]},
        "privateMachines[5].port",
        "must be a TCP port",
        id="bad-port",
    ),
    pytest.param(
        {"privateMachines": [*MACHINES[:-1], without({**CPU_AGENT, "host": "CPU_1"}, "name")]},
        "privateMachines[5].name",
        "'cpu_1' is not a Kubernetes node name",
        id="host-is-not-a-node-name",
    ),
    pytest.param(
        {"privateMachines": [*MACHINES[:-1], {**CPU_AGENT, "hostKey": "AAAA"}]},
        "privateMachines[5].hostKey",
        "must be a public key line",
        id="bad-host-key",
    ),
    pytest.param({"privateSshKey": ""}, "privateSshKey", "is not set", id="missing-ssh-key"),
    pytest.param(
        {"privateK3sSha256": ""}, "privateK3sSha256", "64 hex digits", id="missing-k3s-sha256"
    ),
    pytest.param(
        {"privateK3sInstallScriptSha256": "abc"},
        "privateK3sInstallScriptSha256",
        "64 hex digits",
        id="short-install-sha256",
    ),
    pytest.param(
        {"privateK3sVersion": "1.33"},
        "privateK3sVersion",
        "a k3s release like v1.33.5+k3s1",
        id="bad-k3s-version",
    ),
    pytest.param(
        {"privateNvidiaToolkitVersion": "latest"},
        "privateNvidiaToolkitVersion",
        "like 1.17.8-1",
        id="unpinned-toolkit",
    ),
    pytest.param(
        {"privateKubeconfig": stack_config()["privateKubeconfig"]},
        "privateKubeconfig",
        "is set, and so is privateMachines",
        id="kubeconfig-and-machines",
    ),
    pytest.param(
        {"privateKubeContext": "gpu"},
        "privateKubeContext",
        "must be empty with privateMachines",
        id="context-with-machines",
    ),
    pytest.param(
        {"privateInstallDevicePlugin": False},
        "privateInstallDevicePlugin",
        "must be true with privateMachines",
        id="no-device-plugin",
    ),
    pytest.param(
        {"privateArtefactsDir": "/nonexistent/artefacts"},
        "privateArtefactsDir",
        "is not a directory",
        id="artefacts-dir-missing",
    ),
]


@pytest.mark.parametrize(("overrides", "key", "reason"), BAD_MACHINES)
def test_bad_machines_config_names_the_key(
    overrides: dict[str, Any], key: str, reason: str
) -> None:
    with pytest.raises(StackConfigError) as raised:
        read_settings(machine_stack(**overrides))
    lines = [line.strip() for line in str(raised.value).splitlines()]
    named = [line for line in lines if line.startswith(f"spillover:{key}: ")]
    assert named and reason in named[0], lines


def test_every_bad_key_is_named_at_once_and_nothing_is_created() -> None:
    values = machine_stack(
        privateMachines=[*SERVERS[:2], without(GPU_AGENTS[0], "gpus")],
        privateSshKey="",
        privateK3sSha256="not-a-checksum",
    )
    mocks = RecordingMocks()
    with pytest.raises(StackConfigError) as raised:
        deploy(values, mocks)
    message = str(raised.value)
    for key in (
        "privateMachines[2].gpus",
        "privateSshKey",
        "privateK3sSha256",
    ):
        assert f"spillover:{key}:" in message, message
    assert mocks.created == []


def test_whole_numbers_given_as_text_are_read() -> None:
    """`pulumi config set --path 'privateMachines[0].gpus' 0` may hand over "0" as text."""
    as_text = [{**m, "gpus": str(m["gpus"]), "port": str(m.get("port", 22))} for m in MACHINES]
    cluster = read_settings(machine_stack(privateMachines=as_text)).private.cluster
    assert [m.gpus for m in cluster.agents] == [1, 1, 0]
    assert cluster.agents[0].port == 2222


def airgap_dir(tmp_path: Path, *, nvidia: bool = True, skip: str = "") -> Path:
    for name in ("k3s", "install.sh", "k3s-airgap-images-amd64.tar.zst"):
        if name != skip:
            (tmp_path / name).write_bytes(b"artefact")
    if nvidia:
        (tmp_path / "nvidia").mkdir()
        (tmp_path / "nvidia" / "nvidia-container-toolkit_1.17.8-1_amd64.deb").write_bytes(b"deb")
    return tmp_path


def test_an_air_gapped_directory_must_hold_every_artefact(tmp_path: Path) -> None:
    directory = airgap_dir(tmp_path, nvidia=False, skip="install.sh")
    with pytest.raises(StackConfigError) as raised:
        read_settings(
            machine_stack(privateArtefactsDir=str(directory), privateK3sImagesSha256=IMAGES_SHA256)
        )
    message = str(raised.value)
    assert "spillover:privateArtefactsDir:" in message
    assert "install.sh" in message and "nvidia/*.deb or *.rpm" in message


def test_an_air_gapped_stack_needs_the_images_checksum(tmp_path: Path) -> None:
    with pytest.raises(StackConfigError, match="spillover:privateK3sImagesSha256"):
        read_settings(machine_stack(privateArtefactsDir=str(airgap_dir(tmp_path))))


def test_servers_come_first_whatever_the_order_listed() -> None:
    cluster = read_settings(machine_stack()).private.cluster
    assert [m.node_name for m in cluster.machines] == [
        "cp-1",
        "cp-2",
        "cp-3",
        "gpu-1.rack.example.com",
        "gpu-2.rack.example.com",
        "cpu-1",
    ]
    assert cluster.machines[3].port == 2222 and cluster.machines[0].port == 22


def test_a_kubeconfig_stack_builds_no_cluster() -> None:
    settings = read_settings(stack_config())
    assert settings.private.cluster is None and settings.private.kubeconfig is not None
