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
AUTOSCALER_SERVICE_ACCOUNT = "cluster-autoscaler"
AUTOSCALER_NAMESPACE = "kube-system"


def device_plugin_release(
    name: str, *, node_selector: dict[str, str] | None, opts: pulumi.ResourceOptions
) -> k8s.helm.v3.Release:
    """NVIDIA's device plugin: advertises nvidia.com/gpu on GPU nodes, tainted ones included."""
    toleration = {"key": GPU_TAINT["key"], "operator": "Exists", "effect": GPU_TAINT["effect"]}
    values: dict[str, object] = {"tolerations": [toleration]}
    if node_selector:
        values["nodeSelector"] = node_selector
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
            "image": {"tag": f"v{eks_version}.0"},
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
