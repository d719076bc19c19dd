"""Cluster add-ons from public charts at pinned versions: GPU discovery, node autoscaling."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.irsa import ROLE_ANNOTATION
from components.node_groups import GPU_TAINT

NVIDIA_DEVICE_PLUGIN = {
    "repo": "https://nvidia.github.io/k8s-device-plugin",
    "chart": "nvidia-device-plugin",
    "version": "0.18.0",
}
CLUSTER_AUTOSCALER = {
    "repo": "https://kubernetes.github.io/autoscaler",
    "chart": "cluster-autoscaler",
    "version": "9.52.1",
}
CLUSTER_AUTOSCALER_IMAGE_TAGS = {"1.33": "v1.33.5", "1.34": "v1.34.4", "1.35": "v1.35.1"}
"""The newest cluster-autoscaler patch of each Kubernetes minor it supports (its minor must match
the cluster's). Source: kubernetes/autoscaler releases, as collected in
aws-ia/terraform-aws-eks-blueprints-addons#516 (July 2026). eksVersion is checked against it."""
AUTOSCALER_SERVICE_ACCOUNT = "cluster-autoscaler"
AUTOSCALER_NAMESPACE = "kube-system"


def device_plugin_values(node_labels: dict[str, str]) -> dict[str, object]:
    """Values that run the device plugin on exactly the nodes carrying all of node_labels.

    The chart's default `affinity` requires Node Feature Discovery's PCI labels or
    nvidia.com/gpu.present=true; a nodeSelector alone would be ANDed with it and still match
    nothing where NFD does not run, so the affinity itself is replaced (Helm replaces lists).
    """
    toleration = {"key": GPU_TAINT["key"], "operator": "Exists", "effect": GPU_TAINT["effect"]}
    expressions = [
        {"key": key, "operator": "In", "values": [value]} for key, value in node_labels.items()
    ]
    required = {"nodeSelectorTerms": [{"matchExpressions": expressions}]}
    return {
        "tolerations": [toleration],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}},
    }


def device_plugin_release(
    name: str, *, node_selector: dict[str, str], opts: pulumi.ResourceOptions
) -> k8s.helm.v3.Release:
    """NVIDIA's device plugin: advertises nvidia.com/gpu on the GPU nodes node_selector names."""
    values = device_plugin_values(node_selector)
    return k8s.helm.v3.Release(
        name,
        name="nvidia-device-plugin",
        chart=NVIDIA_DEVICE_PLUGIN["chart"],
        version=NVIDIA_DEVICE_PLUGIN["version"],
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=NVIDIA_DEVICE_PLUGIN["repo"]),
        namespace="nvidia-device-plugin",
        create_namespace=True,
        values=values,
        opts=opts,
    )


def cluster_autoscaler_release(
    name: str,
    *,
    cluster_name: str,
    region: str,
    eks_version: str,
    role_arn: pulumi.Input[str],
    node_selector: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> k8s.helm.v3.Release:
    """The cluster autoscaler, finding node groups by their tags and acting through IRSA."""
    return k8s.helm.v3.Release(
        name,
        name="cluster-autoscaler",
        chart=CLUSTER_AUTOSCALER["chart"],
        version=CLUSTER_AUTOSCALER["version"],
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CLUSTER_AUTOSCALER["repo"]),
        namespace=AUTOSCALER_NAMESPACE,
        values={
            "fullnameOverride": "cluster-autoscaler",
            "cloudProvider": "aws",
            "awsRegion": region,
            "autoDiscovery": {"clusterName": cluster_name},
            # The autoscaler's minor version must match the cluster's.
            "image": {"tag": CLUSTER_AUTOSCALER_IMAGE_TAGS[eks_version]},
            "rbac": {
                "serviceAccount": {
                    "name": AUTOSCALER_SERVICE_ACCOUNT,
                    "annotations": {ROLE_ANNOTATION: role_arn},
                }
            },
            "nodeSelector": node_selector,
            "extraArgs": {
                # Each burst pool's Triton is pinned to one capacity type's group, so there is
                # no choice to expand by; spot that does not come within this time is given up
                # (the group backs off) and the controller moves demand to on-demand.
                "max-node-provision-time": "5m",
                "scale-down-unneeded-time": "5m",
                "skip-nodes-with-system-pods": "false",
            },
        },
        opts=opts,
    )
