"""Identities of the private site's workloads in AWS and in the burst cluster, without keys.

The private cluster's service-account issuer is registered with IAM, so its pods exchange their
own tokens for short-lived role credentials (web identity; the pod identity webhook on the private
cluster mounts them, as EKS does). The controller's role is also its user in the burst cluster:
an EKS access entry maps it to a group that a namespaced Role allows to scale Triton, no more.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components import chart_values, policies
from components.irsa import service_account_role
from components.tagging import CostTagger
from settings import WorkloadSettings

CONTROLLER_GROUP = "spillover-controller"
"""Kubernetes group of the controller in the burst cluster (no system: prefix, as EKS requires)."""


def controller_rules(deployments: list[str]) -> list[k8s.rbac.v1.PolicyRuleArgs]:
    """Read Deployments and pods, change the scale of the pools' own Deployments; no Secrets.

    The controller chart's rules in the private cluster, plus `pods/proxy` get: from the other
    site the controller reads each burst pod's /metrics through the API server's pod proxy
    (`kubernetes.metrics.via: apiserver-proxy`), one path per pod, where the NLB would balance
    scrapes across pods and nothing routes to pod IPs. RBAC cannot narrow it to Triton's pods
    (no label selectors, and resourceNames cannot name generated pod names): the Role is in
    the Triton namespace only, where nothing else runs.
    """
    return [
        k8s.rbac.v1.PolicyRuleArgs(
            api_groups=[""], resources=["pods"], verbs=["get", "list", "watch"]
        ),
        k8s.rbac.v1.PolicyRuleArgs(api_groups=[""], resources=["pods/proxy"], verbs=["get"]),
        k8s.rbac.v1.PolicyRuleArgs(
            api_groups=["apps"], resources=["deployments"], verbs=["get", "list", "watch"]
        ),
        k8s.rbac.v1.PolicyRuleArgs(
            api_groups=["apps"],
            resources=["deployments/scale"],
            resource_names=deployments,
            verbs=["get", "update", "patch"],
        ),
    ]


class PrivateSiteIdentity(pulumi.ComponentResource):
    """IAM roles for the controller (and private Triton reading S3), and the controller's RBAC."""

    controller_role_arn: pulumi.Output[str]
    triton_role_arn: pulumi.Output[str] | None

    def __init__(
        self,
        name: str,
        *,
        issuer_url: str,
        workload: WorkloadSettings,
        cluster_name: pulumi.Output[str],
        bucket_arn: pulumi.Input[str] | None,
        tagger: CostTagger,
        provider: aws.Provider,
        burst_provider: k8s.Provider,
        burst_namespace: k8s.core.v1.Namespace,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("spillover:identity:PrivateSiteIdentity", name, None, opts)
        on_aws = pulumi.ResourceOptions(parent=self, provider=provider)
        in_burst = pulumi.ResourceOptions(parent=self, provider=burst_provider)

        issuer = aws.iam.OpenIdConnectProvider(
            f"{name}-private-oidc",
            url=issuer_url,
            client_id_lists=[policies.STS_AUDIENCE],
            tags=tagger("private", "identity"),
            opts=on_aws,
        )
        controller = service_account_role(
            f"{name}-controller-role",
            oidc_provider_arn=issuer.arn,
            issuer_url=issuer_url,
            namespace=workload.namespace,
            service_accounts=[chart_values.CONTROLLER_SERVICE_ACCOUNT],
            policy=policies.controller(),
            tags=tagger("shared", "controller"),
            opts=on_aws,
        )
        # The cluster's own name output, not the name string: the entry then waits for EKS
        # to exist instead of racing it (ResourceNotFoundException).
        aws.eks.AccessEntry(
            f"{name}-controller-access",
            cluster_name=cluster_name,
            principal_arn=controller.arn,
            kubernetes_groups=[CONTROLLER_GROUP],
            type="STANDARD",
            tags=tagger("burst", "controller"),
            opts=on_aws,
        )
        role = k8s.rbac.v1.Role(
            f"{name}-controller-burst-role",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=CONTROLLER_GROUP, namespace=burst_namespace.metadata.name
            ),
            rules=controller_rules([t.deployment for t in workload.burst_tritons]),
            opts=in_burst,
        )
        k8s.rbac.v1.RoleBinding(
            f"{name}-controller-burst-binding",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=CONTROLLER_GROUP, namespace=role.metadata.namespace
            ),
            role_ref=k8s.rbac.v1.RoleRefArgs(
                api_group="rbac.authorization.k8s.io", kind="Role", name=role.metadata.name
            ),
            subjects=[
                k8s.rbac.v1.SubjectArgs(
                    api_group="rbac.authorization.k8s.io", kind="Group", name=CONTROLLER_GROUP
                )
            ],
            opts=in_burst,
        )
        self.controller_role_arn = controller.arn
        self.triton_role_arn = None
        if bucket_arn is not None:
            self.triton_role_arn = service_account_role(
                f"{name}-private-triton-role",
                oidc_provider_arn=issuer.arn,
                issuer_url=issuer_url,
                namespace=workload.namespace,
                service_accounts=[chart_values.triton_service_account(workload.private_triton)],
                policy=policies.model_read(bucket_arn, workload.model_store_prefix),
                tags=tagger("private", "triton"),
                opts=on_aws,
            ).arn
        self.register_outputs(
            {
                "controller_role_arn": self.controller_role_arn,
                "triton_role_arn": self.triton_role_arn,
            }
        )
