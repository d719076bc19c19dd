"""The private GPU cluster you own: Triton, the gateway in front of both pools, the controller."""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

from components import chart_values
from components.addons import device_plugin_release
from settings import PrivateSiteSettings, WorkloadSettings


class PrivateSite(pulumi.ComponentResource):
    """Everything deployed to the private cluster, through a provider built from its kubeconfig:
    privateKubeconfig's, or the one PrivateCluster made from privateMachines."""

    provider: k8s.Provider
    gateway_endpoint: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        private: PrivateSiteSettings,
        kubeconfig: pulumi.Input[str],
        workload: WorkloadSettings,
        charts_dir: Path,
        region: str,
        bucket_name: pulumi.Input[str],
        triton_role_arn: pulumi.Input[str] | None,
        controller_role_arn: pulumi.Input[str],
        burst_hostnames: dict[str, pulumi.Output[str]],
        burst_slots: int,
        burst_ca_certificate: pulumi.Input[str],
        burst_server_names: dict[str, str],
        burst_kubeconfig: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("spillover:private_site:PrivateSite", name, None, opts)
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=kubeconfig,
            context=private.context,
            opts=pulumi.ResourceOptions(parent=self),
        )
        in_cluster = pulumi.ResourceOptions(parent=self, provider=self.provider)
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=workload.namespace),
            opts=in_cluster,
        )
        gpu_nodes = dict([private.gpu_node_label])
        if private.install_device_plugin:
            device_plugin_release(
                f"{name}-nvidia-device-plugin", node_selector=gpu_nodes, opts=in_cluster
            )
        triton = k8s.helm.v3.Release(
            f"{name}-triton",
            name=workload.private_triton.deployment,
            chart=chart_values.chart_path(charts_dir, "triton-recommender"),
            namespace=namespace.metadata.name,
            values=chart_values.triton_values(
                workload,
                workload.private_triton,
                model_source=private.model_source,
                bucket=bucket_name if private.model_source == "s3" else None,
                region=region,
                model_pvc=private.model_pvc,
                role_arn=triton_role_arn,
                node_selector=gpu_nodes,
                service={"type": "ClusterIP"},
            ),
            timeout=1800,
            opts=in_cluster,
        )
        gateway = k8s.helm.v3.Release(
            f"{name}-gateway",
            name=chart_values.GATEWAY_RELEASE,
            chart=chart_values.chart_path(charts_dir, "spillover-gateway"),
            namespace=namespace.metadata.name,
            values=chart_values.gateway_values(
                workload,
                service_type=private.gateway_service_type,
                private_slots=private.gpu_replicas,
                burst_hostnames=burst_hostnames,
                burst_slots=burst_slots,
                burst_ca_certificate=burst_ca_certificate,
                burst_server_names=burst_server_names,
            ),
            opts=pulumi.ResourceOptions.merge(
                in_cluster, pulumi.ResourceOptions(depends_on=[triton])
            ),
        )
        # The controller chart mounts this Secret's files; the pools' kubeconfig paths name them.
        # The kubeconfig holds no credential (the controller's IAM role signs its tokens).
        burst_access = k8s.core.v1.Secret(
            f"{name}-burst-kubeconfig",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=chart_values.BURST_KUBECONFIG_SECRET, namespace=namespace.metadata.name
            ),
            string_data={workload.burst_kubeconfig_file: burst_kubeconfig},
            opts=in_cluster,
        )
        k8s.helm.v3.Release(
            f"{name}-controller",
            name=chart_values.CONTROLLER_RELEASE,
            chart=chart_values.chart_path(charts_dir, "spillover-controller"),
            namespace=namespace.metadata.name,
            values=chart_values.controller_values(workload, role_arn=controller_role_arn),
            opts=pulumi.ResourceOptions.merge(
                in_cluster, pulumi.ResourceOptions(depends_on=[gateway, burst_access])
            ),
        )
        self.gateway_endpoint = self._gateway_endpoint(name, gateway, workload.namespace)
        self.register_outputs({"gateway_endpoint": self.gateway_endpoint})

    def _gateway_endpoint(
        self, name: str, gateway: k8s.helm.v3.Release, namespace: str
    ) -> pulumi.Output[str]:
        """Where clients send requests: the load balancer's address, or the in-cluster name."""
        service = k8s.core.v1.Service.get(
            f"{name}-gateway-service",
            pulumi.Output.concat(gateway.status.namespace, "/", chart_values.GATEWAY_RELEASE),
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=[gateway]),
        )
        in_cluster = f"{chart_values.GATEWAY_RELEASE}.{namespace}.svc.cluster.local"

        def address(status: k8s.core.v1.outputs.ServiceStatus | None) -> str:
            ingress = status.load_balancer.ingress if status and status.load_balancer else None
            host = (ingress[0].hostname or ingress[0].ip) if ingress else None
            return f"http://{host or in_cluster}:{chart_values.GATEWAY_HTTP_PORT}"

        return service.status.apply(address)
