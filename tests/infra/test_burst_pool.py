"""The burst pool: spot and on-demand GPU node groups the autoscaler grows from zero."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest
import yaml

from components.network import subnet_ranges
from tests.infra.conftest import (
    REGION,
    Deployment,
    Resource,
    deploy,
    node_group_name,
    plain,
    stack_config,
)

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
RELEASE = "kubernetes:helm.sh/v3:Release"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}
AUTOSCALER = "k8s.io/cluster-autoscaler"


def gpu_groups(deployment: Deployment) -> list[Resource]:
    return [g for g in deployment.of_type(NODE_GROUP) if g.inputs["amiType"].endswith("NVIDIA")]


def group_by_capacity(deployment: Deployment, capacity: str) -> Resource:
    groups = [g for g in gpu_groups(deployment) if g.inputs["capacityType"] == capacity]
    assert len(groups) == 1, f"expected one {capacity} GPU node group, found {len(groups)}"
    return groups[0]


def release(deployment: Deployment, name: str) -> dict[str, Any]:
    """Inputs of the Helm release with this release name."""
    found = [r for r in deployment.of_type(RELEASE) if r.inputs.get("name") == name]
    assert len(found) == 1, f"expected one release {name}, found {len(found)}"
    return plain(found[0].inputs)


def test_a_spot_group_and_an_on_demand_fallback(example: Deployment) -> None:
    spot = group_by_capacity(example, "SPOT")
    on_demand = group_by_capacity(example, "ON_DEMAND")
    assert len(spot.inputs["instanceTypes"]) >= 2, f"{spot.name}: spot needs several GPU types"
    assert on_demand.inputs["instanceTypes"], on_demand.name


def test_gpu_groups_are_tainted_and_scale_from_zero(example: Deployment) -> None:
    for group in gpu_groups(example):
        scaling = plain(group.inputs["scalingConfig"])
        assert scaling["minSize"] == 0, f"{group.name} must scale down to 0 nodes"
        assert scaling["desiredSize"] == 0, f"{group.name} must start with no nodes"
        assert scaling["maxSize"] >= 1, group.name
        assert GPU_TAINT in group.inputs["taints"], f"{group.name} lacks the GPU taint"


def test_gpu_group_sizes_follow_the_stack_config(example: Deployment) -> None:
    config = stack_config()
    spot = plain(group_by_capacity(example, "SPOT").inputs["scalingConfig"])
    on_demand = plain(group_by_capacity(example, "ON_DEMAND").inputs["scalingConfig"])
    assert spot["maxSize"] == config["spotMaxSize"]
    assert on_demand["maxSize"] == config["onDemandMaxSize"]


def test_the_system_group_is_not_tainted_and_always_runs(example: Deployment) -> None:
    (system,) = [g for g in example.of_type(NODE_GROUP) if g not in gpu_groups(example)]
    assert not system.inputs.get("taints"), system.name
    assert plain(system.inputs["scalingConfig"])["minSize"] >= 1, system.name


def test_pulumi_up_leaves_the_current_size_to_the_autoscaler(example: Deployment) -> None:
    """Once created, a group's desired size belongs to the autoscaler and the controller."""
    for group in example.of_type(NODE_GROUP):
        ignored = example.options[(NODE_GROUP, group.name)].ignore_changes or []
        assert "scalingConfig.desiredSize" in ignored, f"pulumi up would resize {group.name}"


def test_gpu_groups_carry_autoscaler_discovery_and_node_template_tags(example: Deployment) -> None:
    cluster = example.outputs["burstClusterName"]
    for group in gpu_groups(example):
        tags = group.inputs["tags"]
        assert tags.get(f"{AUTOSCALER}/enabled") == "true", group.name
        assert tags.get(f"{AUTOSCALER}/{cluster}") == "owned", group.name
        assert tags.get(f"{AUTOSCALER}/node-template/taint/nvidia.com/gpu") == (
            "present:NoSchedule"
        ), f"{group.name}: the autoscaler cannot see the taint of a group at 0 nodes"
        for label, value in group.inputs["labels"].items():
            key = f"{AUTOSCALER}/node-template/label/{label}"
            assert tags.get(key) == value, f"{group.name}: no node-template tag for {label}"


def test_node_template_tags_reach_the_auto_scaling_groups(example: Deployment) -> None:
    """EKS does not copy node group tags to its Auto Scaling group, which the autoscaler reads."""
    asg_tags = [plain(t.inputs) for t in example.of_type("aws:autoscaling/tag:Tag")]
    for group in gpu_groups(example):
        asg = f"eks-{node_group_name(group.inputs)}-1a2b"
        on_asg = {
            t["tag"]["key"]: t["tag"]["value"] for t in asg_tags if t["autoscalingGroupName"] == asg
        }
        wanted = {k: v for k, v in group.inputs["tags"].items() if k.startswith(AUTOSCALER)}
        assert on_asg == wanted, (
            f"{group.name}: its Auto Scaling group misses {wanted.keys() - on_asg.keys()}"
        )


def test_nodes_launch_with_imdsv2_encrypted_disks_and_cost_tags(example: Deployment) -> None:
    for group in example.of_type(NODE_GROUP):
        template_id = group.inputs["launchTemplate"]["id"]
        template = plain(example.by_id("aws:ec2/launchTemplate:LaunchTemplate", template_id).inputs)
        assert template["metadataOptions"]["httpTokens"] == "required", group.name
        assert template["metadataOptions"]["httpPutResponseHopLimit"] == 1, group.name
        (disk,) = template["blockDeviceMappings"]
        assert disk["ebs"]["encrypted"] == "true", f"{group.name}: unencrypted root volume"
        tagged = {spec["resourceType"]: spec["tags"] for spec in template["tagSpecifications"]}
        for kind in ("instance", "volume"):
            assert tagged.get(kind, {}).get("spillover:pool") == "burst", (
                f"{group.name}: {kind}s it launches would carry no cost tags"
            )


def test_the_autoscaler_runs_with_its_own_role_on_system_nodes(example: Deployment) -> None:
    values = release(example, "cluster-autoscaler")["values"]
    assert values["autoDiscovery"]["clusterName"] == example.outputs["burstClusterName"]
    assert values["cloudProvider"] == "aws" and values["awsRegion"] == REGION
    role = values["rbac"]["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert role.endswith("burst-autoscaler-role"), role
    assert values["nodeSelector"] == {"spillover.io/node-role": "system"}
    eks_version = stack_config()["eksVersion"]
    assert values["image"]["tag"].startswith(f"v{eks_version}."), "autoscaler must match EKS"


def test_the_autoscaler_role_only_resizes_this_clusters_groups(example: Deployment) -> None:
    cluster = example.outputs["burstClusterName"]
    policy = json.loads(example.named("burst-autoscaler-role-policy").inputs["policy"])
    writes = [s for s in policy["Statement"] if "autoscaling:SetDesiredCapacity" in s["Action"]]
    assert writes, "the autoscaler cannot resize anything"
    for statement in writes:
        condition = statement["Condition"]["StringEquals"]
        assert condition == {f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster}": "owned"}
    trust = json.loads(example.named("burst-autoscaler-role").inputs["assumeRolePolicy"])
    (subject,) = [
        v
        for k, v in trust["Statement"][0]["Condition"]["StringEquals"].items()
        if k.endswith(":sub")
    ]
    assert subject == "system:serviceaccount:kube-system:cluster-autoscaler"


def test_nvidia_device_plugin_is_pinned_and_tolerates_gpu_nodes(example: Deployment) -> None:
    for plugin in [
        r for r in example.of_type(RELEASE) if r.inputs["name"] == "nvidia-device-plugin"
    ]:
        inputs = plain(plugin.inputs)
        assert inputs["repositoryOpts"]["repo"] == "https://nvidia.github.io/k8s-device-plugin"
        assert inputs["version"][0].isdigit(), f"{plugin.name}: pin the chart version"
        tolerated = {t["key"] for t in inputs["values"]["tolerations"]}
        assert "nvidia.com/gpu" in tolerated, plugin.name
    providers = {
        r.provider for r in example.of_type(RELEASE) if r.inputs["name"] == "nvidia-device-plugin"
    }
    assert providers == {"private-k8s", "burst-k8s"}, "both clusters need the device plugin"


@pytest.mark.parametrize("capacity", ["spot", "on-demand"])
def test_each_burst_pool_runs_on_its_capacity_type_behind_an_nlb(
    example: Deployment, capacity: str
) -> None:
    (pool,) = [
        p for p in stack_config()["controllerConfig"]["pools"] if p.get("capacity_type") == capacity
    ]
    inputs = release(example, pool["kubernetes"]["deployment"])
    values = inputs["values"]
    assert inputs["namespace"] == pool["kubernetes"]["namespace"]
    assert values["nodeSelector"] == {"spillover.io/capacity": capacity}
    assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}.items() <= (
        values["tolerations"][0].items()
    )
    assert values["modelRepository"]["source"] == "s3"
    assert values["modelRepository"]["s3"]["bucket"] == example.outputs["modelBucket"]
    service = values["service"]
    annotations = service["annotations"]
    assert service["type"] == "LoadBalancer"
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-type"] == "nlb"
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internal"
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-internal"] == "true"
    assert service["loadBalancerSourceRanges"] == stack_config()["burstAllowedCidrs"]


def test_burst_triton_reads_models_through_irsa_scoped_to_the_bucket(example: Deployment) -> None:
    policy = json.loads(example.named("burst-triton-role-policy").inputs["policy"])
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert actions == {"s3:ListBucket", "s3:GetObject"}, f"model readers may only read: {actions}"
    resources = {r for s in policy["Statement"] for r in [s["Resource"]]}
    assert resources == {
        "arn:aws:s3:::spillover-models-20261123",
        "arn:aws:s3:::spillover-models-20261123/model_repo/*",
    }
    trust = json.loads(example.named("burst-triton-role").inputs["assumeRolePolicy"])
    condition = trust["Statement"][0]["Condition"]["StringEquals"]
    subjects = next(v for k, v in condition.items() if k.endswith(":sub"))
    assert sorted(subjects) == [
        "system:serviceaccount:spillover:triton-recommender-ondemand",
        "system:serviceaccount:spillover:triton-recommender-spot",
    ]
    assert next(v for k, v in condition.items() if k.endswith(":aud")) == "sts.amazonaws.com"


def test_the_burst_kubeconfig_gets_tokens_from_aws_not_from_a_stored_credential(
    example: Deployment,
) -> None:
    kubeconfig = yaml.safe_load(example.outputs["burstKubeconfig"])
    (user,) = kubeconfig["users"]
    assert set(user["user"]) == {"exec"}, "no token, certificate or password in the kubeconfig"
    assert user["user"]["exec"]["command"] == "spillover", "no AWS CLI needed"
    assert user["user"]["exec"]["args"][:1] == ["eks-token"]
    assert example.named("burst-k8s").inputs["kubeconfig"], "the EKS provider uses it"


def test_the_vpc_has_private_and_public_subnets_in_each_zone_and_one_nat(
    example: Deployment,
) -> None:
    subnets = [plain(s.inputs) for s in example.of_type("aws:ec2/subnet:Subnet")]
    zones = stack_config()["availabilityZones"]
    for role in ("internal-elb", "elb"):
        tagged = [s for s in subnets if s["tags"].get(f"kubernetes.io/role/{role}") == "1"]
        assert sorted(s["availabilityZone"] for s in tagged) == sorted(zones), role
    assert len(example.of_type("aws:ec2/natGateway:NatGateway")) == 1
    (cluster,) = example.of_type("aws:eks/cluster:Cluster")
    private_ids = {f"burst-network-private-{i}-id" for i in range(len(zones))}
    assert set(cluster.inputs["vpcConfig"]["subnetIds"]) == private_ids


@pytest.mark.parametrize(
    ("cidr", "zones"), [("10.42.0.0/16", 2), ("10.0.0.0/20", 3), ("172.16.0.0/18", 7)]
)
def test_subnets_fit_the_vpc_without_overlapping(cidr: str, zones: int) -> None:
    private, public = subnet_ranges(cidr, zones)
    networks = [ipaddress.ip_network(block) for block in private + public]
    assert len(networks) == 2 * zones
    vpc = ipaddress.ip_network(cidr)
    assert all(network.subnet_of(vpc) for network in networks)  # type: ignore[arg-type]
    for index, network in enumerate(networks):
        assert not any(network.overlaps(other) for other in networks[index + 1 :])


def test_the_regions_first_two_zones_when_none_are_configured() -> None:
    deployment = deploy(stack_config(availabilityZones=[]))
    zones = sorted(
        s.inputs["availabilityZone"] for s in deployment.of_type("aws:ec2/subnet:Subnet")
    )
    assert zones == ["us-east-1a", "us-east-1a", "us-east-1b", "us-east-1b"]


def test_an_internet_facing_nlb_admits_only_the_allowed_ranges() -> None:
    deployment = deploy(
        stack_config(
            burstLoadBalancerScheme="internet-facing", burstAllowedCidrs=["203.0.113.0/24"]
        )
    )
    for name in ("triton-recommender-spot", "triton-recommender-ondemand"):
        service = release(deployment, name)["values"]["service"]
        annotations = service["annotations"]
        assert (
            annotations["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internet-facing"
        )
        assert "service.beta.kubernetes.io/aws-load-balancer-internal" not in annotations
        assert service["loadBalancerSourceRanges"] == ["203.0.113.0/24"]


def test_no_on_demand_group_when_no_pool_uses_it() -> None:
    document = stack_config()["controllerConfig"]
    spot_only = {
        **document,
        "pools": [p for p in document["pools"] if p["capacity_type"] != "on-demand"],
    }
    deployment = deploy(stack_config(controllerConfig=spot_only, onDemandMaxSize=0))
    assert [g.inputs["capacityType"] for g in gpu_groups(deployment)] == ["SPOT"]
    assert list(deployment.outputs["burstEndpoints"]) == ["burst_spot"]
