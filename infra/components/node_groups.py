"""EKS managed node groups that tag what they launch and tell the autoscaler what they would add."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import pulumi
import pulumi_aws as aws

GPU_TAINT_KEY = "nvidia.com/gpu"
GPU_TAINT_VALUE = "present"
GPU_TAINT = {"key": GPU_TAINT_KEY, "value": GPU_TAINT_VALUE, "effect": "NoSchedule"}
"""Keeps everything but GPU work off GPU nodes; Triton's chart tolerates exactly this taint."""

GPU_LABEL = "nvidia.com/gpu.present"
"""Label of GPU nodes; NVIDIA's device plugin is scheduled by it (its chart's own default too)."""

ACCELERATOR_LABEL = "k8s.amazonaws.com/accelerator"
"""The cluster autoscaler's GPU label on AWS. On a node with it but no nvidia.com/gpu allocatable
yet, the autoscaler treats the node as still starting (the device plugin has not registered)
instead of unschedulable capacity, and does not add another node for the same pending pod."""

_GPU_MODELS = {
    "g4dn": "nvidia-tesla-t4",
    "g5": "nvidia-a10g",
    "g6": "nvidia-l4",
    "g6e": "nvidia-l40s",
    "p3": "nvidia-tesla-v100",
    "p4d": "nvidia-tesla-a100",
    "p5": "nvidia-h100",
}

NODE_GROUP_NAME_PREFIX_MAX = 37
"""EKS node group names are at most 63 characters; the provider appends 26 to a prefix."""

POOL_LABEL = "spillover.io/pool"
CAPACITY_LABEL = "spillover.io/capacity"
ROLE_LABEL = "spillover.io/node-role"

_EKS_EFFECT = {"NoSchedule": "NO_SCHEDULE", "NoExecute": "NO_EXECUTE"}


@dataclass(frozen=True)
class NodeGroupSpec:
    """One managed node group."""

    role: str
    """Short name, part of the node group's name (system, gpu-spot, gpu-on-demand)."""
    capacity_type: Literal["SPOT", "ON_DEMAND"]
    instance_types: tuple[str, ...]
    min_size: int
    max_size: int
    ami_type: str
    disk_gib: int
    labels: Mapping[str, str]
    taints: tuple[Mapping[str, str], ...] = field(default=())


def accelerator_type(instance_types: Sequence[str]) -> str:
    """ACCELERATOR_LABEL's value: the GPU model the group's instance types share.

    The autoscaler only needs the label to be present; its value is the GPU type it counts
    against `--gpu-total` limits (not set here). A group mixing models gets plain "nvidia".
    """
    models = {_GPU_MODELS.get(kind.split(".")[0], "nvidia") for kind in instance_types}
    return models.pop() if len(models) == 1 else "nvidia"


def node_group_name_prefix(cluster_name: str, role: str) -> str:
    """A name prefix, not a name: a replacement is created under a new name before the old group
    is deleted (a fixed name collides: ResourceInUseException). The new group starts at its
    minimum size, so the system nodes are up before the old ones drain; a GPU group (minimum 0)
    is grown by the autoscaler as the old group's pods are evicted. delete-before-replace would
    instead leave no group at all, and no system node, in between."""
    return f"{cluster_name[: NODE_GROUP_NAME_PREFIX_MAX - len(role) - 2]}-{role}-"


def autoscaler_tags(cluster_name: str, spec: NodeGroupSpec) -> dict[str, str]:
    """Auto-discovery tags, plus node-template tags so the autoscaler can plan a group at size 0.

    With no node running, the autoscaler learns a group's labels and taints from these tags only;
    without them it would never scale a tainted GPU group up from zero for a pending Triton pod.
    """
    prefix = "k8s.io/cluster-autoscaler"
    tags = {f"{prefix}/enabled": "true", f"{prefix}/{cluster_name}": "owned"}
    for key, value in spec.labels.items():
        tags[f"{prefix}/node-template/label/{key}"] = value
    for taint in spec.taints:
        tags[f"{prefix}/node-template/taint/{taint['key']}"] = f"{taint['value']}:{taint['effect']}"
    return tags


def _auto_scaling_group(resources: Sequence[aws.eks.outputs.NodeGroupResource]) -> str:
    groups = resources[0].autoscaling_groups or []
    return groups[0].name or ""


def managed_node_group(
    name: str,
    *,
    spec: NodeGroupSpec,
    cluster_name: pulumi.Input[str],
    kubernetes_version: pulumi.Input[str],
    node_role_arn: pulumi.Input[str],
    subnet_ids: Sequence[pulumi.Input[str]],
    tags: dict[str, str],
    autoscaler_cluster: str,
    opts: pulumi.ResourceOptions,
) -> aws.eks.NodeGroup:
    """Launch template (tags on instances, volumes, ENIs; IMDSv2) + node group + ASG tags."""
    template = aws.ec2.LaunchTemplate(
        f"{name}-lt",
        description=f"{spec.role} nodes of {autoscaler_cluster}",
        block_device_mappings=[
            aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                device_name="/dev/xvda",
                ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                    volume_size=spec.disk_gib,
                    volume_type="gp3",
                    encrypted="true",
                    delete_on_termination="true",
                ),
            )
        ],
        # IMDSv2 only, one hop: pods cannot reach the node role's credentials; they use IRSA.
        metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
            http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1
        ),
        # Provider default tags stop at the launch template; instances, their volumes and
        # network interfaces get the cost tags only from here.
        tag_specifications=[
            aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type=kind, tags=tags)
            for kind in ("instance", "volume", "network-interface")
        ],
        update_default_version=True,
        tags=tags,
        opts=opts,
    )
    discovery = autoscaler_tags(autoscaler_cluster, spec)
    group = aws.eks.NodeGroup(
        name,
        cluster_name=cluster_name,
        node_group_name_prefix=node_group_name_prefix(autoscaler_cluster, spec.role),
        # The cluster's version: upgrading the cluster rolls its nodes' kubelets after it.
        version=kubernetes_version,
        node_role_arn=node_role_arn,
        subnet_ids=list(subnet_ids),
        capacity_type=spec.capacity_type,
        instance_types=list(spec.instance_types),
        ami_type=spec.ami_type,
        launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
            id=template.id, version=template.latest_version.apply(str)
        ),
        scaling_config=aws.eks.NodeGroupScalingConfigArgs(
            min_size=spec.min_size, desired_size=spec.min_size, max_size=spec.max_size
        ),
        update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
        labels=dict(spec.labels),
        taints=[
            aws.eks.NodeGroupTaintArgs(
                key=taint["key"], value=taint["value"], effect=_EKS_EFFECT[taint["effect"]]
            )
            for taint in spec.taints
        ],
        tags={**tags, **discovery},
        # The autoscaler and the controller own the current size; `pulumi up` must not undo it.
        opts=pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(ignore_changes=["scalingConfig.desiredSize"])
        ),
    )
    # EKS does not copy node group tags to the Auto Scaling group the autoscaler reads.
    asg_name = group.resources.apply(_auto_scaling_group)
    for key, value in discovery.items():
        aws.autoscaling.Tag(
            f"{name}-asg-{key}",
            autoscaling_group_name=asg_name,
            tag=aws.autoscaling.TagTagArgs(key=key, value=value, propagate_at_launch=False),
            opts=opts,
        )
    return group
