"""From machines to Triton: the PrivateCluster component under Pulumi's mocks.

The program runs as `pulumi up` would with a stack that lists privateMachines and no
privateKubeconfig; the mocks answer the first server's token and k3s.yaml as k3s writes them.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from components import private_cluster
from components.node_groups import GPU_TAINT
from tests.infra.conftest import (
    K3S_TOKEN,
    Deployment,
    Resource,
    deploy,
    is_secret_input,
    plain,
)
from tests.infra.machines import (
    GPU_AGENTS,
    IMAGES_SHA256,
    INSTALL_SHA256,
    K3S_SHA256,
    MACHINES,
    SSH_KEY,
    machine_stack,
)

COMMAND = "command:remote:Command"
COPY = "command:remote:CopyToRemote"
RELEASE = "kubernetes:helm.sh/v3:Release"
GPU_NODES = ["gpu-1.rack.example.com", "gpu-2.rack.example.com"]
NODES = ["cp-1", "cp-2", "cp-3", *GPU_NODES, "cpu-1"]


@pytest.fixture(scope="module")
def built() -> Deployment:
    return deploy(machine_stack())


def step(deployment: Deployment, node: str, name: str) -> Resource:
    return deployment.named(f"private-cluster-{node}-{name}")


def after(deployment: Deployment, resource: Resource) -> set[str]:
    """Names of everything the engine must finish before this resource (transitively)."""
    by_urn = {r.urn: r for r in deployment.resources if r.urn}
    seen: set[str] = set()
    pending = list(resource.dependencies)
    while pending:
        urn = pending.pop()
        if urn in seen or urn not in by_urn:
            continue
        seen.add(urn)
        pending.extend(by_urn[urn].dependencies)
    return {by_urn[urn].name for urn in seen}


def plain_strings(value: Any) -> list[str]:
    """Every string in a resource's inputs that is not inside a secret."""
    if is_secret_input(value):
        return []
    if isinstance(value, dict):
        return [s for item in value.values() for s in plain_strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in plain_strings(item)]
    return [value] if isinstance(value, str) else []


def test_the_private_site_deploys_onto_the_cluster_it_built(built: Deployment) -> None:
    provider = built.providers["private-k8s"]
    assert is_secret_input(provider.inputs["kubeconfig"])
    kubeconfig = yaml.safe_load(plain(provider.inputs["kubeconfig"]))
    # The first server's k3s.yaml, pointed from 127.0.0.1 at the address pulumi up reached.
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "https://10.0.0.11:6443"
    assert kubeconfig["users"][0]["user"]["client-key-data"] == "k3s-admin-client-key"
    assert plain(provider.inputs["kubeconfig"]) == built.outputs["privateKubeconfig"]
    assert "privateKubeconfig" in built.secret_outputs
    triton = next(r for r in built.of_type(RELEASE) if r.inputs["name"] == "triton-recommender")
    assert triton.provider == "private-k8s"


def test_the_provider_waits_for_every_node_to_be_joined_and_labelled(built: Deployment) -> None:
    provider = built.providers["private-k8s"]
    waits_for = after(built, provider)
    expected = {f"private-cluster-{node}-role" for node in NODES}
    expected |= {f"private-cluster-{node}-k3s" for node in NODES}
    expected.add("private-cluster-cp-1-kubeconfig")
    assert expected <= waits_for, expected - waits_for
    (kubeconfig_inputs,) = [
        deps for prop, deps in provider.property_dependencies.items() if prop == "kubeconfig"
    ]
    roles = {step(built, node, "role").urn for node in NODES}
    assert roles <= kubeconfig_inputs


def test_the_first_server_initialises_and_the_others_join_it(built: Deployment) -> None:
    first = plain(step(built, "cp-1", "k3s").inputs)
    assert "--cluster-init" in first["create"] and "--server-url" not in first["create"]
    assert "stdin" not in first
    token = step(built, "cp-1", "token")
    assert after(built, token) >= {"private-cluster-cp-1-k3s"}
    for node in NODES[1:]:
        join = step(built, node, "k3s")
        create = join.inputs["create"]
        assert "--server-url https://10.0.0.11:6443" in create and "--cluster-init" not in create
        assert {"private-cluster-cp-1-k3s", "private-cluster-cp-1-token"} <= after(built, join)
        # The token comes on stdin, from the first server's read of it.
        assert is_secret_input(join.inputs["stdin"])
        assert plain(join.inputs["stdin"]).strip() == K3S_TOKEN
        assert join.property_dependencies["stdin"] == {token.urn}


def test_servers_join_one_at_a_time_and_agents_in_parallel(built: Deployment) -> None:
    assert "private-cluster-cp-2-k3s" in after(built, step(built, "cp-3", "k3s"))
    for agent in [*GPU_NODES, "cpu-1"]:
        waits_for = after(built, step(built, agent, "k3s"))
        others = {f"private-cluster-{node}-k3s" for node in NODES if node not in ("cp-1", agent)}
        assert not waits_for & others, waits_for & others


def test_gpu_machines_get_the_toolkit_before_k3s(built: Deployment) -> None:
    for node in GPU_NODES:
        toolkit = step(built, node, "nvidia-toolkit")
        assert toolkit.inputs["create"].startswith(
            'sudo -n sh "$HOME/.spillover/bootstrap/nvidia-toolkit.sh" install --version 1.17.8-1'
        )
        assert toolkit.name in after(built, step(built, node, "k3s"))
        assert "--gpu" in step(built, node, "k3s").inputs["create"].split()
        copies = {f"private-cluster-{node}-copy-bootstrap-{s}" for s in private_cluster.SCRIPTS}
        assert copies <= after(built, toolkit)
    names = {r.name for r in built.of_type(COMMAND)}
    for node in ("cp-1", "cp-2", "cp-3", "cpu-1"):
        assert f"private-cluster-{node}-nvidia-toolkit" not in names
        assert "--gpu" not in step(built, node, "k3s").inputs["create"].split()


def test_gpu_nodes_get_the_label_and_taint_triton_and_the_device_plugin_expect(
    built: Deployment,
) -> None:
    taint = f"{GPU_TAINT['key']}={GPU_TAINT['value']}:{GPU_TAINT['effect']}"
    for node in NODES:
        role = step(built, node, "role")
        words = role.inputs["create"].split()
        # Labelled from the first server, where the admin kubeconfig is.
        assert plain(role.inputs["connection"])["host"] == "10.0.0.11"
        assert words[words.index("--node-name") + 1] == node
        assert words[words.index("--gpu-taint") + 1] == taint
        assert words[words.index("--gpu-label") + 1] == "nvidia.com/gpu.present=true"
        # --gpu sets them; without it they are cleared (a machine whose gpus went to 0).
        assert ("--gpu" in words) == (node in GPU_NODES), node
    private = [r for r in built.of_type(RELEASE) if r.provider == "private-k8s"]
    triton = plain(next(r for r in private if r.inputs["name"] == "triton-recommender").inputs)
    assert triton["values"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"operator": "Equal", **GPU_TAINT} in triton["values"]["tolerations"]
    plugin = plain(next(r for r in private if r.inputs["name"] == "nvidia-device-plugin").inputs)
    (toleration,) = plugin["values"]["tolerations"]
    assert (toleration["key"], toleration["effect"]) == (GPU_TAINT["key"], GPU_TAINT["effect"])
    affinity = plugin["values"]["affinity"]["nodeAffinity"]
    (term,) = affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term["matchExpressions"] == [
        {"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}
    ]


def test_the_gpu_label_follows_the_stack_config() -> None:
    deployment = deploy(machine_stack(privateGpuNodeLabel="example.com/accelerator=a100"))
    words = step(deployment, GPU_NODES[0], "role").inputs["create"].split()
    assert words[words.index("--gpu-label") + 1] == "example.com/accelerator=a100"
    triton = next(
        r
        for r in deployment.of_type(RELEASE)
        if r.provider == "private-k8s" and r.inputs["name"] == "triton-recommender"
    )
    assert plain(triton.inputs)["values"]["nodeSelector"] == {"example.com/accelerator": "a100"}


def test_the_ssh_key_and_the_token_never_appear_in_plain_state(built: Deployment) -> None:
    key_body = SSH_KEY.splitlines()[1]
    for resource in built.resources:
        for text in plain_strings(resource.inputs):
            assert key_body not in text, resource.name
            assert K3S_TOKEN not in text, resource.name
        if resource.typ in (COMMAND, COPY):
            assert is_secret_input(resource.inputs["connection"]), resource.name
    for name, value in built.outputs.items():
        assert key_body not in str(value) and K3S_TOKEN not in str(value), name


def test_the_first_servers_files_are_read_as_secrets_and_never_logged(built: Deployment) -> None:
    for what in ("token", "kubeconfig"):
        read = step(built, "cp-1", what)
        assert read.inputs["logging"] == "none"
        options = built.options[(COMMAND, read.name)]
        assert "stdout" in (options.additional_secret_outputs or [])
        # The previous stdout must not ride into the next run's environment either.
        assert read.inputs["addPreviousOutputInEnv"] is False


def test_every_step_is_idempotent_and_delete_undoes_it(built: Deployment) -> None:
    for resource in built.of_type(COMMAND):
        inputs = resource.inputs
        assert inputs["update"] == inputs["create"], resource.name
        assert inputs["addPreviousOutputInEnv"] is False, resource.name
    for node in NODES:
        assert (
            step(built, node, "k3s")
            .inputs["delete"]
            .startswith('sudo -n sh "$HOME/.spillover/bootstrap/k3s-node.sh" uninstall')
        )
        drain = step(built, node, "role").inputs["delete"].split()
        assert drain[4:7] == ["drain", "--node-name", node]
    for node in GPU_NODES:
        assert " uninstall " in step(built, node, "nvidia-toolkit").inputs["delete"]
    for what in ("token", "kubeconfig"):
        assert "delete" not in step(built, "cp-1", what).inputs


def test_versions_and_checksums_come_from_the_stack_config(built: Deployment) -> None:
    for node in NODES:
        words = step(built, node, "k3s").inputs["create"].split()
        pinned = {
            flag: words[words.index(flag) + 1]
            for flag in ("--version", "--sha256", "--install-sha256")
        }
        assert pinned == {
            "--version": "v1.33.5+k3s1",
            "--sha256": K3S_SHA256,
            "--install-sha256": INSTALL_SHA256,
        }
        assert "--artefacts" not in words


def comparable(resource: Resource) -> dict[str, Any]:
    """Inputs as the engine diffs them: a file asset by its path (the engine adds its hash)."""
    inputs = plain(resource.inputs)
    if isinstance(inputs.get("source"), pulumi.FileAsset):
        inputs["source"] = inputs["source"].path
    return inputs


def test_a_rerun_declares_the_same_steps_and_a_replaced_machine_changes_only_its_own(
    built: Deployment,
) -> None:
    replaced = {**GPU_AGENTS[1], "host": "10.0.0.99", "name": GPU_NODES[1]}
    machines = [m if m is not GPU_AGENTS[1] else replaced for m in MACHINES]
    again = deploy(machine_stack(privateMachines=machines))
    before = {r.name: comparable(r) for r in built.of_type(COMMAND) + built.of_type(COPY)}
    now = {r.name: comparable(r) for r in again.of_type(COMMAND) + again.of_type(COPY)}
    assert set(before) == set(now)
    changed = {name for name in before if before[name] != now[name]}
    own = {name for name in before if name.startswith(f"private-cluster-{GPU_NODES[1]}-")}
    assert changed == own
    for name in changed:
        # Its role step still runs on the first server; the trigger makes it a new node's step.
        assert now[name]["triggers"][0] == "10.0.0.99"
        if not name.endswith("-role"):
            assert now[name]["connection"]["host"] == "10.0.0.99"


def test_a_replaced_machine_is_drained_and_uninstalled_before_its_successor_joins(
    built: Deployment,
) -> None:
    """The engine deletes a delete_before_replace resource (and its replaced dependents) first."""
    for resource in built.of_type(COMMAND):
        options = built.options[(COMMAND, resource.name)]
        assert options.delete_before_replace is True, resource.name


def test_a_changed_script_changes_the_commands_that_run_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = private_cluster.scripts_digest()
    scripts = tmp_path / "scripts"
    shutil.copytree(private_cluster.SCRIPTS_DIR, scripts)
    with (scripts / "k3s-node.sh").open("a") as script:
        script.write("# changed\n")
    monkeypatch.setattr(private_cluster, "SCRIPTS_DIR", scripts)
    assert private_cluster.scripts_digest() != before


def airgap_dir(tmp_path: Path) -> Path:
    for name in ("k3s", "install.sh", "k3s-airgap-images-amd64.tar.zst"):
        (tmp_path / name).write_bytes(b"artefact")
    (tmp_path / "nvidia").mkdir()
    for package in ("nvidia-container-toolkit", "libnvidia-container1"):
        (tmp_path / "nvidia" / f"{package}_1.17.8-1_amd64.deb").write_bytes(b"deb")
    return tmp_path


def test_air_gapped_the_artefacts_are_copied_and_nothing_is_downloaded(tmp_path: Path) -> None:
    directory = airgap_dir(tmp_path)
    deployment = deploy(
        machine_stack(privateArtefactsDir=str(directory), privateK3sImagesSha256=IMAGES_SHA256)
    )
    copies = {r.name: r.inputs["remotePath"] for r in deployment.of_type(COPY)}
    for node in NODES:
        prefix = f"private-cluster-{node}-copy-artefacts-"
        mine = {name.removeprefix(prefix) for name in copies if name.startswith(prefix)}
        k3s = {"k3s", "install.sh", "k3s-airgap-images-amd64.tar.zst"}
        packages = {
            "nvidia-nvidia-container-toolkit_1.17.8-1_amd64.deb",
            "nvidia-libnvidia-container1_1.17.8-1_amd64.deb",
        }
        assert mine == (k3s | packages if node in GPU_NODES else k3s), node
        words = step(deployment, node, "k3s").inputs["create"].split()
        assert words[words.index("--artefacts") + 1] == "$HOME/.spillover/artefacts"
        assert words[words.index("--images-sha256") + 1] == IMAGES_SHA256
        assert after(deployment, step(deployment, node, "k3s")) >= {
            f"{prefix}{name}" for name in k3s
        }
    assert copies["private-cluster-cp-1-copy-artefacts-k3s"] == ".spillover/artefacts/k3s"


def test_a_stack_with_a_kubeconfig_builds_nothing_over_ssh(example: Deployment) -> None:
    assert not example.of_type(COMMAND) and not example.of_type(COPY)
    assert "privateKubeconfig" not in example.outputs
