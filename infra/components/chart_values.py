"""Values for the repository's charts (charts/*): every chart key the program sets is here.

Kept in one module so aligning with a chart's values.yaml is one diff, and so the tests can check
these values against each chart's values.schema.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi

from components.burst_tls import NEGOTIATION_POLICY
from components.irsa import ROLE_ANNOTATION
from components.node_groups import GPU_TAINT
from components.tagging import annotation_value
from settings import KUBECONFIGS_DIR, TritonDeployment, WorkloadSettings

GATEWAY_RELEASE = "spillover-gateway"
CONTROLLER_RELEASE = "spillover-controller"
CONTROLLER_SERVICE_ACCOUNT = "spillover-controller"
BURST_KUBECONFIG_SECRET = "spillover-burst-kubeconfig"
TRITON_HTTP_PORT = 8000
GATEWAY_HTTP_PORT = 8000
NLB_PORTS = ("http", "grpc")
"""The Triton Service's ports a burst NLB carries: inference only, never metrics (8002)."""


def chart_path(charts_dir: Path, chart: str) -> str:
    """Local chart directory, as helm.v3.Release's `chart` takes it."""
    return str(charts_dir / chart)


def split_image(image: str) -> dict[str, str]:
    """'repo/name:tag' -> {repository, tag}; a registry port (host:5000/name) is not a tag."""
    repository, _, tag = image.rpartition(":")
    if not repository or "/" in tag:
        return {"repository": image, "tag": "latest"}
    return {"repository": repository, "tag": tag}


def triton_service_account(triton: TritonDeployment) -> str:
    """Each release's own ServiceAccount (the chart's default name, its full name)."""
    return triton.deployment


def triton_values(
    workload: WorkloadSettings,
    triton: TritonDeployment,
    *,
    model_source: str,
    bucket: pulumi.Input[str] | None,
    region: str,
    model_pvc: str | None,
    role_arn: pulumi.Input[str] | None,
    node_selector: dict[str, str],
    service: dict[str, Any],
) -> dict[str, Any]:
    """triton-recommender for one pool: the controller owns its replica count."""
    repository: dict[str, Any] = {"source": model_source}
    if model_source == "s3":
        repository["s3"] = {
            "bucket": bucket,
            "prefix": workload.model_store_prefix,
            "region": region,
        }
    else:
        repository["pvc"] = {"claimName": model_pvc}
    return {
        # Deployment, Services and ServiceAccount all take the pool's Deployment name.
        "fullnameOverride": triton.deployment,
        "image": split_image(workload.triton_image),
        # Left out of the Deployment so `pulumi up` never resets what the controller scaled.
        "scaledExternally": True,
        "modelRepository": repository,
        "gpu": {"count": workload.gpus_per_replica},
        "tolerations": [{"operator": "Equal", **GPU_TAINT}],
        "nodeSelector": node_selector,
        "serviceAccount": {
            "create": True,
            "name": triton_service_account(triton),
            "annotations": {ROLE_ANNOTATION: role_arn} if role_arn is not None else {},
        },
        "service": service,
    }


def nlb_service(
    scheme: str,
    allowed_cidrs: tuple[str, ...],
    tags: dict[str, str],
    certificate_arn: pulumi.Input[str],
) -> dict[str, Any]:
    """A LoadBalancer Service that AWS provisions as an NLB, tagged for cost allocation.

    Both the cloud controller's and the AWS Load Balancer Controller's scheme annotations are
    set, so the NLB is internal or internet-facing whichever of them reconciles the Service.
    Its listeners are TLS (components/burst_tls.py says why the NLB terminates it), it carries
    only the inference ports, and it admits only `allowed_cidrs` (the private site's egress).
    """
    annotations: dict[str, pulumi.Input[str]] = {
        "service.beta.kubernetes.io/aws-load-balancer-type": "nlb",
        "service.beta.kubernetes.io/aws-load-balancer-scheme": scheme,
        # The NLB is created by Kubernetes, not Pulumi: provider default tags never reach it.
        "service.beta.kubernetes.io/aws-load-balancer-additional-resource-tags": annotation_value(
            tags
        ),
        # TLS listeners on both inference ports; the NLB forwards plain TCP to the pods.
        "service.beta.kubernetes.io/aws-load-balancer-ssl-cert": certificate_arn,
        "service.beta.kubernetes.io/aws-load-balancer-ssl-ports": ",".join(NLB_PORTS),
        "service.beta.kubernetes.io/aws-load-balancer-ssl-negotiation-policy": (NEGOTIATION_POLICY),
    }
    if scheme == "internal":
        annotations["service.beta.kubernetes.io/aws-load-balancer-internal"] = "true"
    return {
        "type": "LoadBalancer",
        "annotations": annotations,
        "loadBalancerSourceRanges": list(allowed_cidrs),
        # Metrics reach the controller another way (per replica, not through a balancer).
        "exposeMetrics": False,
    }


def gateway_values(
    workload: WorkloadSettings,
    *,
    service_type: str,
    private_slots: int,
    burst_hostnames: dict[str, pulumi.Output[str]],
    burst_slots: int,
    burst_ca_certificate: pulumi.Input[str],
    burst_server_names: dict[str, str],
) -> dict[str, Any]:
    """spillover-gateway: the private pool by its headless Service, each burst pool by its NLB.

    Burst traffic goes over TLS, verified against the program's CA and each pool's name.
    """
    private = workload.private_triton
    return {
        "service": {"type": service_type},
        "burstTls": {"enabled": True, "caCertificate": burst_ca_certificate},
        "pools": {
            "private": {
                "name": private.pool,
                "service": f"{private.deployment}-headless",
                "namespace": workload.namespace,
                # A replica without a slot gets no traffic: one per replica the GPUs can hold.
                "slots": private_slots,
                "weight": 100,
            },
            # Burst starts without traffic; the controller raises its weight when it is needed.
            # An NLB's name resolves to one address per zone: one slot each.
            "burst": [
                {
                    "name": triton.pool,
                    "hostname": burst_hostnames[triton.pool],
                    "tlsServerName": burst_server_names[triton.deployment],
                    "slots": burst_slots,
                    "weight": 0,
                }
                for triton in workload.burst_tritons
            ],
        },
    }


def controller_values(workload: WorkloadSettings, *, role_arn: pulumi.Input[str]) -> dict[str, Any]:
    """spillover-controller: its config document, IAM role, and the burst cluster's kubeconfig."""
    return {
        "image": split_image(workload.controller_image),
        "serviceAccount": {
            "create": True,
            "name": CONTROLLER_SERVICE_ACCOUNT,
            "annotations": {ROLE_ANNOTATION: role_arn},
        },
        "kubeconfigs": {"secretName": BURST_KUBECONFIG_SECRET, "mountPath": KUBECONFIGS_DIR},
        "config": workload.controller_config.model_dump(mode="json", exclude_none=True),
    }
