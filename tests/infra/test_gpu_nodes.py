"""GPU nodes in both clusters: where the device plugin runs, what the autoscaler knows of them,
and node groups that can be replaced and upgraded."""

from __future__ import annotations

from typing import Any

import pytest

from components.node_groups import node_group_name_prefix
from tests.infra.conftest import Deployment, deploy, plain, stack_config

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
RELEASE = "kubernetes:helm.sh/v3:Release"
ACCELERATOR = "k8s.amazonaws.com/accelerator"

DEVICE_PLUGIN_CHART_DEFAULTS: dict[str, Any] = {
    "nodeSelector": {},
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {
                                "key": "feature.node.kubernetes.io/pci-10de.present",
                                "operator": "In",
                                "values": ["true"],
                            }
                        ]
                    },
                    {
                        "matchExpressions": [
                            {
                                "key": "feature.node.kubernetes.io/cpu-model.vendor_id",
                                "operator": "In",
                                "values": ["NVIDIA"],
                            }
                        ]
                    },
                    {
                        "matchExpressions": [
                            {"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}
                        ]
                    },
                ]
            }
        }
    },
}
"""nodeSelector and affinity defaults of NVIDIA's nvidia-device-plugin chart
(NVIDIA/k8s-device-plugin, deployments/helm/nvidia-device-plugin/values.yaml)."""


def coalesce(defaults: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Helm's merge of a release's values over a chart's: maps merge, anything else replaces."""
    merged = dict(defaults)
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = coalesce(merged[key], value)
        else:
            merged[key] = value
    return merged


def schedules_on(values: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether the scheduler would place the chart's DaemonSet pod on a node with these labels."""
    if any(labels.get(k) != v for k, v in (values.get("nodeSelector") or {}).items()):
        return False
    required = (
        (values.get("affinity") or {})
        .get("nodeAffinity", {})
        .get("requiredDuringSchedulingIgnoredDuringExecution")
    )
    if not required:
        return True
    return any(
        all(
            labels.get(e["key"]) in e["values"] if e["operator"] == "In" else e["key"] in labels
            for e in term["matchExpressions"]
        )
        for term in required["nodeSelectorTerms"]
    )


def device_plugin(deployment: Deployment, provider: str) -> dict[str, Any]:
    (found,) = [
        r
        for r in deployment.of_type(RELEASE)
        if r.inputs["name"] == "nvidia-device-plugin" and r.provider == provider
    ]
    return coalesce(DEVICE_PLUGIN_CHART_DEFAULTS, plain(found.inputs)["values"])


def test_the_chart_default_alone_schedules_on_no_plain_gpu_node() -> None:
    """Why the label must be configured: without NFD, the chart's affinity matches nothing."""
    assert not schedules_on(DEVICE_PLUGIN_CHART_DEFAULTS, {"example.com/gpu": "a100"})


@pytest.fixture(scope="module")
def labelled() -> Deployment:
    return deploy(stack_config(privateGpuNodeLabel="example.com/gpu=a100"))


def test_the_private_device_plugin_runs_on_the_configured_gpu_nodes(labelled: Deployment) -> None:
    values = device_plugin(labelled, "private-k8s")
    assert schedules_on(values, {"example.com/gpu": "a100", "kubernetes.io/os": "linux"})
    assert not schedules_on(values, {"example.com/gpu": "h100"})
    assert not schedules_on(values, {"feature.node.kubernetes.io/pci-10de.present": "true"})


def test_private_triton_goes_where_the_device_plugin_advertises_gpus(
    labelled: Deployment,
) -> None:
    (triton,) = [
        r
        for r in labelled.of_type(RELEASE)
        if r.provider == "private-k8s" and str(r.inputs["chart"]).endswith("triton-recommender")
    ]
    assert plain(triton.inputs)["values"]["nodeSelector"] == {"example.com/gpu": "a100"}


def test_the_burst_device_plugin_runs_on_the_burst_gpu_nodes(example: Deployment) -> None:
    values = device_plugin(example, "burst-k8s")
    for group in example.of_type(NODE_GROUP):
        labels = plain(group.inputs["labels"])
        gpu = group.inputs["amiType"].endswith("NVIDIA")
        assert schedules_on(values, labels) == gpu, group.name


@pytest.mark.parametrize(
    "label", ["nvidia.com/gpu.present", "=true", "a b=c", "Bad_Prefix/gpu=true", "gpu=-x"]
)
def test_a_malformed_gpu_node_label_is_refused_by_name(label: str) -> None:
    with pytest.raises(Exception, match="privateGpuNodeLabel"):
        deploy(stack_config(privateGpuNodeLabel=label))


def test_node_groups_are_named_by_prefix_so_a_replacement_can_coexist(example: Deployment) -> None:
    """create-before-replace with a fixed name collides (ResourceInUseException)."""
    for group in example.of_type(NODE_GROUP):
        assert "nodeGroupName" not in group.inputs, f"{group.name}: a fixed name collides"
        prefix = group.inputs["nodeGroupNamePrefix"]
        assert len(prefix) + 26 <= 63, f"{group.name}: {prefix!r} leaves no room for AWS's suffix"
        options = example.options[(NODE_GROUP, group.name)]
        assert not options.delete_before_replace, f"{group.name}: would drop capacity first"


def test_a_long_stack_name_still_leaves_room_for_the_suffix() -> None:
    prefix = node_group_name_prefix("spillover-" + "x" * 90, "gpu-on-demand")
    assert len(prefix) + 26 <= 63 and prefix.endswith("-gpu-on-demand-"), prefix


def test_node_groups_follow_the_clusters_version(example: Deployment) -> None:
    (cluster,) = example.of_type("aws:eks/cluster:Cluster")
    for group in example.of_type(NODE_GROUP):
        assert group.inputs.get("version") == cluster.inputs["version"], group.name


def test_gpu_nodes_carry_the_autoscalers_gpu_label_also_at_zero_nodes(
    example: Deployment,
) -> None:
    asg_tags = {
        plain(t.inputs)["tag"]["key"]: plain(t.inputs)["tag"]["value"]
        for t in example.of_type("aws:autoscaling/tag:Tag")
    }
    template_key = f"k8s.io/cluster-autoscaler/node-template/label/{ACCELERATOR}"
    for group in example.of_type(NODE_GROUP):
        labels = plain(group.inputs["labels"])
        if not group.inputs["amiType"].endswith("NVIDIA"):
            assert ACCELERATOR not in labels, group.name
            continue
        assert labels.get(ACCELERATOR), f"{group.name}: the autoscaler sees no GPU node"
        assert plain(group.inputs["tags"])[template_key] == labels[ACCELERATOR], group.name
        assert asg_tags.get(template_key) == labels[ACCELERATOR], "not on the Auto Scaling group"


@pytest.mark.parametrize(
    ("types", "model"),
    [
        pytest.param(["g5.xlarge", "g5.2xlarge"], "nvidia-a10g", id="one-model"),
        pytest.param(["g5.xlarge", "g6.xlarge", "g4dn.xlarge"], "nvidia", id="mixed"),
    ],
)
def test_the_accelerator_label_names_the_shared_gpu_model(types: list[str], model: str) -> None:
    document = stack_config()["controllerConfig"]
    pools = [
        {
            **pool,
            "price": {
                **pool["price"],
                "market": {**pool["price"]["market"], "instance_types": types},
            },
        }
        if "market" in pool["price"]
        else pool
        for pool in document["pools"]
    ]  # market prices must ask about the types the node groups launch
    deployment = deploy(
        stack_config(gpuInstanceTypes=types, controllerConfig={**document, "pools": pools})
    )
    gpu = [g for g in deployment.of_type(NODE_GROUP) if g.inputs["amiType"].endswith("NVIDIA")]
    assert {plain(g.inputs["labels"])[ACCELERATOR] for g in gpu} == {model}


def test_the_autoscaler_image_is_a_released_patch_of_the_clusters_minor(
    example: Deployment,
) -> None:
    (autoscaler,) = [
        r for r in example.of_type(RELEASE) if r.inputs["name"] == "cluster-autoscaler"
    ]
    tag = plain(autoscaler.inputs)["values"]["image"]["tag"]
    major, minor, patch = tag.removeprefix("v").split(".")
    assert f"{major}.{minor}" == stack_config()["eksVersion"] and int(patch) > 0, tag


def test_an_eks_version_without_a_pinned_autoscaler_is_refused() -> None:
    with pytest.raises(Exception, match="eksVersion.*cluster-autoscaler"):
        deploy(stack_config(eksVersion="1.29"))
