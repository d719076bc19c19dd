"""The AWS burst pool: EKS with GPU node groups that scale from zero, spot first."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components import addons, chart_values, policies
from components.cluster_admins import cluster_admins, deploying_principal
from components.irsa import service_account_role
from components.kubeconfig import eks_kubeconfig
from components.network import BurstNetwork
from components.node_groups import (
    ACCELERATOR_LABEL,
    CAPACITY_LABEL,
    GPU_LABEL,
    GPU_TAINT,
    POOL_LABEL,
    ROLE_LABEL,
    NodeGroupSpec,
    accelerator_type,
    managed_node_group,
)
from components.tagging import CostTagger
from settings import BurstSettings, WorkloadSettings

_MANAGED_POLICY = "arn:aws:iam::aws:policy/"


def cluster_name(project: str, stack: str) -> str:
    """EKS cluster name: known before the cluster exists, as subnet and autoscaler tags need it."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"{project}-{stack}")[:100]


def _oidc_issuer(identities: Sequence[aws.eks.outputs.ClusterIdentity]) -> str:
    oidcs = identities[0].oidcs or []
    return oidcs[0].issuer or ""


def _ingress_hostname(status: k8s.core.v1.outputs.ServiceStatus | None) -> str:
    ingress = status.load_balancer.ingress if status and status.load_balancer else None
    return (ingress[0].hostname or "") if ingress else ""


class BurstPool(pulumi.ComponentResource):
    """VPC, EKS, system and GPU node groups, autoscaler, device plugin, and Triton behind an NLB."""

    cluster_name: str
    cluster: aws.eks.Cluster
    kubeconfig: pulumi.Output[str]
    provider: k8s.Provider
    namespace: k8s.core.v1.Namespace
    gpu_node_group_arns: list[pulumi.Output[str]]
    endpoint_hostnames: dict[str, pulumi.Output[str]]
    zone_count: int

    def __init__(
        self,
        name: str,
        *,
        burst: BurstSettings,
        workload: WorkloadSettings,
        charts_dir: Path,
        bucket_name: pulumi.Input[str],
        bucket_arn: pulumi.Input[str],
        tagger: CostTagger,
        provider: aws.Provider,
        certificate_arn: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("spillover:burst_pool:BurstPool", name, None, opts)
        self._aws = pulumi.ResourceOptions(parent=self, provider=provider)
        self._tagger = tagger
        self.cluster_name = cluster_name(tagger.project, tagger.stack)
        zones = list(burst.availability_zones) or self._first_zones(provider, count=2)
        self.zone_count = len(zones)

        network = BurstNetwork(
            f"{name}-network",
            vpc_cidr=burst.vpc_cidr,
            region=burst.region,
            zones=zones,
            cluster_name=self.cluster_name,
            tagger=tagger,
            provider=provider,
            opts=pulumi.ResourceOptions(parent=self),
        )
        cluster = self._cluster(name, burst, network)
        self.cluster = cluster
        issuer = cluster.identities.apply(_oidc_issuer)
        oidc = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=issuer,
            client_id_lists=[policies.STS_AUDIENCE],
            tags=self._tags("identity"),
            opts=self._aws,
        )
        deployer = deploying_principal(pulumi.InvokeOptions(parent=self, provider=provider))
        admins = cluster_admins(
            f"{name}-admin",
            cluster=cluster,
            principal_arns=[deployer, *burst.admin_arns],
            tags=self._tags("eks"),
            opts=self._aws,
        )

        system, gpu_groups = self._node_groups(name, burst, cluster, network)
        self.gpu_node_group_arns = [group.arn for group in gpu_groups]

        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(
                cluster.endpoint, cluster.certificate_authority.apply(lambda ca: ca.data)
            ).apply(lambda args: eks_kubeconfig(self.cluster_name, args[0], args[1], burst.region))
        )
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            # The deploying identity talks to the API server only once its access entry is
            # associated with the admin policy.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[cluster, *admins]),
        )
        in_cluster = pulumi.ResourceOptions(
            parent=self, provider=self.provider, depends_on=[system]
        )
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=workload.namespace),
            opts=in_cluster,
        )
        self._autoscaler(name, burst, oidc, issuer, [system, *gpu_groups], in_cluster)
        addons.device_plugin_release(
            f"{name}-nvidia-device-plugin",
            node_selector={GPU_LABEL: "true"},
            opts=in_cluster,
        )
        self._certificate_arn = certificate_arn  # the NLBs' TLS listeners (burst_tls.py)
        self.endpoint_hostnames = self._tritons(
            name, workload, burst, charts_dir, oidc, issuer, bucket_name, bucket_arn, in_cluster
        )
        self.register_outputs(
            {
                "cluster_name": self.cluster_name,
                "kubeconfig": self.kubeconfig,
                "endpoint_hostnames": self.endpoint_hostnames,
                "gpu_node_group_arns": self.gpu_node_group_arns,
            }
        )

    def _tags(self, component: str) -> dict[str, str]:
        return self._tagger("burst", component)

    def _first_zones(self, provider: aws.Provider, count: int) -> list[str]:
        found = aws.get_availability_zones(
            state="available", opts=pulumi.InvokeOptions(parent=self, provider=provider)
        )
        return list(found.names[:count])

    def _role(self, name: str, service: str, managed: list[str]) -> tuple[aws.iam.Role, list]:
        role = aws.iam.Role(
            name,
            assume_role_policy=policies.service_trust(service),
            tags=self._tags("eks"),
            opts=self._aws,
        )
        attachments = [
            aws.iam.RolePolicyAttachment(
                f"{name}-{policy}",
                role=role.name,
                policy_arn=_MANAGED_POLICY + policy,
                opts=self._aws,
            )
            for policy in managed
        ]
        return role, attachments

    def _cluster(self, name: str, burst: BurstSettings, network: BurstNetwork) -> aws.eks.Cluster:
        role, attachments = self._role(
            f"{name}-cluster-role", "eks.amazonaws.com", ["AmazonEKSClusterPolicy"]
        )
        # Created here rather than by EKS so it carries a retention and the cost tags.
        logs = aws.cloudwatch.LogGroup(
            f"{name}-control-plane-logs",
            name=f"/aws/eks/{self.cluster_name}/cluster",
            retention_in_days=30,
            tags=self._tags("eks"),
            opts=self._aws,
        )
        return aws.eks.Cluster(
            f"{name}-cluster",
            name=self.cluster_name,
            role_arn=role.arn,
            version=burst.eks_version,
            # Standard support only: at its end EKS upgrades the cluster one minor version
            # instead of billing extended support (six times the cluster-hour price). Raise
            # eksVersion before then: EKS cannot go back down to the version the stack names.
            upgrade_policy=aws.eks.ClusterUpgradePolicyArgs(support_type="STANDARD"),
            vpc_config=aws.eks.ClusterVpcConfigArgs(
                subnet_ids=network.private_subnet_ids,
                endpoint_private_access=True,
                # No public CIDRs configured: private-only, reached over the VPN the internal
                # NLB already needs. Otherwise public, but only from the listed ranges.
                endpoint_public_access=bool(burst.api_public_cidrs),
                public_access_cidrs=list(burst.api_public_cidrs) or None,
            ),
            # Access entries, not the aws-auth ConfigMap. EKS's own creator entry is off: the
            # program declares the deploying identity's entry itself (cluster_admins.py), so
            # listing that identity in burstAdminArns too cannot collide with a hidden one (409).
            access_config=aws.eks.ClusterAccessConfigArgs(
                authentication_mode="API", bootstrap_cluster_creator_admin_permissions=False
            ),
            enabled_cluster_log_types=["api", "audit", "authenticator"],
            tags=self._tags("eks"),
            opts=pulumi.ResourceOptions.merge(
                self._aws, pulumi.ResourceOptions(depends_on=[*attachments, logs])
            ),
        )

    def _node_groups(
        self, name: str, burst: BurstSettings, cluster: aws.eks.Cluster, network: BurstNetwork
    ) -> tuple[aws.eks.NodeGroup, list[aws.eks.NodeGroup]]:
        role, attachments = self._role(
            f"{name}-node-role",
            "ec2.amazonaws.com",
            [
                "AmazonEKSWorkerNodePolicy",
                "AmazonEKS_CNI_Policy",
                "AmazonEC2ContainerRegistryReadOnly",
            ],
        )
        after_role = pulumi.ResourceOptions.merge(
            self._aws, pulumi.ResourceOptions(depends_on=attachments)
        )
        specs = [
            NodeGroupSpec(
                role="system",
                capacity_type="ON_DEMAND",
                instance_types=(burst.system_instance_type,),
                min_size=burst.system_min_size,
                max_size=burst.system_max_size,
                ami_type="AL2023_x86_64_STANDARD",
                disk_gib=50,
                labels={ROLE_LABEL: "system", POOL_LABEL: "burst"},
            )
        ]
        # One group per capacity type; each burst pool's Triton is pinned to one of them, so
        # the autoscaler has no choice to expand by. The controller, not an expander, moves
        # demand from spot to on-demand when spot capacity does not arrive.
        for capacity, label, maximum in (
            ("SPOT", "spot", burst.spot_max_size),
            ("ON_DEMAND", "on-demand", burst.on_demand_max_size),
        ):
            if maximum == 0:
                continue  # EKS needs a maximum of at least 1; 0 means "no such group".
            specs.append(
                NodeGroupSpec(
                    role=f"gpu-{label}",
                    capacity_type=capacity,  # type: ignore[arg-type]
                    instance_types=burst.gpu_instance_types,
                    min_size=0,
                    max_size=maximum,
                    ami_type="AL2023_x86_64_NVIDIA",
                    disk_gib=burst.gpu_node_disk_gib,
                    labels={
                        ROLE_LABEL: "gpu",
                        POOL_LABEL: "burst",
                        CAPACITY_LABEL: label,
                        GPU_LABEL: "true",
                        ACCELERATOR_LABEL: accelerator_type(burst.gpu_instance_types),
                    },
                    taints=(GPU_TAINT,),
                )
            )
        groups = [
            managed_node_group(
                f"{name}-{spec.role}",
                spec=spec,
                cluster_name=cluster.name,
                kubernetes_version=cluster.version,
                node_role_arn=role.arn,
                subnet_ids=network.private_subnet_ids,
                tags=self._tags(f"nodes-{spec.role}"),
                autoscaler_cluster=self.cluster_name,
                opts=after_role,
            )
            for spec in specs
        ]
        return groups[0], groups[1:]

    def _autoscaler(
        self,
        name: str,
        burst: BurstSettings,
        oidc: aws.iam.OpenIdConnectProvider,
        issuer: pulumi.Output[str],
        groups: list[aws.eks.NodeGroup],
        in_cluster: pulumi.ResourceOptions,
    ) -> None:
        role = service_account_role(
            f"{name}-autoscaler-role",
            oidc_provider_arn=oidc.arn,
            issuer_url=issuer,
            namespace=addons.AUTOSCALER_NAMESPACE,
            service_accounts=[addons.AUTOSCALER_SERVICE_ACCOUNT],
            policy=policies.cluster_autoscaler(self.cluster_name, [g.arn for g in groups]),
            tags=self._tags("autoscaler"),
            opts=self._aws,
        )
        addons.cluster_autoscaler_release(
            f"{name}-cluster-autoscaler",
            cluster_name=self.cluster_name,
            region=burst.region,
            eks_version=burst.eks_version,
            role_arn=role.arn,
            node_selector={ROLE_LABEL: "system"},
            opts=in_cluster,
        )

    def _tritons(
        self,
        name: str,
        workload: WorkloadSettings,
        burst: BurstSettings,
        charts_dir: Path,
        oidc: aws.iam.OpenIdConnectProvider,
        issuer: pulumi.Output[str],
        bucket_name: pulumi.Input[str],
        bucket_arn: pulumi.Input[str],
        in_cluster: pulumi.ResourceOptions,
    ) -> dict[str, pulumi.Output[str]]:
        """One Triton per burst pool, pinned to its capacity type's nodes, each behind an NLB.

        Returns each pool's NLB hostname.
        """
        role = service_account_role(
            f"{name}-triton-role",
            oidc_provider_arn=oidc.arn,
            issuer_url=issuer,
            namespace=workload.namespace,
            service_accounts=[
                chart_values.triton_service_account(t) for t in workload.burst_tritons
            ],
            policy=policies.model_read(bucket_arn, workload.model_store_prefix),
            tags=self._tags("triton"),
            opts=self._aws,
        )
        hostnames = {}
        for triton in workload.burst_tritons:
            release = k8s.helm.v3.Release(
                f"{name}-{triton.deployment}",
                name=triton.deployment,
                chart=chart_values.chart_path(charts_dir, "triton-recommender"),
                namespace=self.namespace.metadata.name,
                values=chart_values.triton_values(
                    workload,
                    triton,
                    model_source="s3",
                    bucket=bucket_name,
                    region=burst.region,
                    model_pvc=None,
                    role_arn=role.arn,
                    node_selector={CAPACITY_LABEL: triton.capacity_type},
                    service=chart_values.nlb_service(
                        burst.load_balancer_scheme,
                        burst.allowed_cidrs,
                        self._tags(f"nlb-{triton.pool}"),
                        self._certificate_arn,
                    ),
                ),
                # A new Deployment starts one replica, which waits for a GPU node from zero
                # (autoscaler, EC2, image pull, model load) before Helm calls the release ready.
                timeout=1800,
                opts=in_cluster,
            )
            hostnames[triton.pool] = self._load_balancer_hostname(name, release, triton.deployment)
        return hostnames

    def _load_balancer_hostname(
        self, name: str, release: k8s.helm.v3.Release, service_name: str
    ) -> pulumi.Output[str]:
        """The NLB's DNS name, read from the Service the Triton chart created."""
        service = k8s.core.v1.Service.get(
            f"{name}-{service_name}-service",
            pulumi.Output.concat(release.status.namespace, "/", service_name),
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=[release]),
        )
        return service.status.apply(_ingress_hostname)
