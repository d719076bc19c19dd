"""Stack configuration, read once into frozen settings; a value that cannot work names its key.

Types, defaults and descriptions live in Pulumi.yaml and nowhere else: this module requires every
key (the Pulumi CLI fills in the declared defaults) and checks what a type cannot say, such as a
maximum below a minimum. The controller's document is validated by spillover.config, the one
schema the controller itself loads.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

import pulumi

from cluster_settings import PrivateClusterSettings, read_private_cluster
from components.addons import CLUSTER_AUTOSCALER_IMAGE_TAGS
from config_reader import ConfigReader
from spillover.config import SpilloverConfig

KUBECONFIGS_DIR = "/etc/spillover/kubeconfigs"
"""Where the controller chart mounts the Secret with other clusters' kubeconfigs."""

RELEASE_NAME = re.compile(r"^[a-z]([a-z0-9-]{0,51}[a-z0-9])?$")
"""A Helm release name (53 characters at most), which also names the Triton Deployment."""

S3_PREFIX = re.compile(r"^[A-Za-z0-9!_.*'()=+-]+(/[A-Za-z0-9!_.*'()=+-]+)*$")
"""A key prefix without slashes at either end, as the Triton chart's schema accepts."""

T = TypeVar("T")

SECRET_CONFIG_KEYS = ("privateKubeconfig", "privateSshKey")
"""Keys whose values must be set with --secret (the program refuses them in plain text)."""


class StackConfigError(pulumi.RunError):
    """Stack configuration that cannot be deployed; the message lists every bad key and why."""


@dataclass(frozen=True)
class TritonDeployment:
    """One Triton release: the Deployment behind one pool of the controller's config."""

    pool: str
    """The pool's name in the controller's config (and the gateway's server prefix)."""
    deployment: str
    """Helm release name, which the chart also gives the Deployment and its Services."""
    capacity_type: Literal["owned", "spot", "on-demand"]
    """owned (private cluster), spot or on-demand (the burst node group it runs on)."""


@dataclass(frozen=True)
class WorkloadSettings:
    """What runs in both clusters."""

    namespace: str
    """Namespace of Triton, gateway and controller in both clusters."""
    triton_image: str
    """Triton image, repository:tag."""
    gpus_per_replica: int
    """nvidia.com/gpu per Triton replica."""
    model_store_prefix: str
    """Key prefix of the model repository in the bucket, without slashes at either end."""
    controller_image: str
    """Controller image, repository:tag."""
    controller_config: SpilloverConfig
    """The controller's spillover.yaml, validated."""
    private_triton: TritonDeployment
    """The private pool's Triton in the private cluster."""
    burst_tritons: tuple[TritonDeployment, ...]
    """One Triton per burst pool in the burst cluster, each on its capacity type's nodes."""
    burst_kubeconfig_file: str
    """File name under KUBECONFIGS_DIR the burst pools read the burst cluster's kubeconfig from."""


@dataclass(frozen=True)
class PrivateSiteSettings:
    """The GPU cluster you own."""

    kubeconfig: pulumi.Output[str] | None
    """Its kubeconfig, a secret; None when spillover provisions it (cluster)."""
    context: str | None
    """Context within the kubeconfig; None means its current-context."""
    gpu_replicas: int
    """Triton replicas its GPUs hold: the private pool's ceiling and its gateway slots."""
    install_device_plugin: bool
    """Whether to install NVIDIA's device plugin."""
    gpu_node_label: tuple[str, str]
    """(key, value) of the label on its GPU nodes: where the device plugin and Triton run."""
    model_source: Literal["s3", "pvc"]
    """Where private Triton reads models from."""
    model_pvc: str | None
    """PersistentVolumeClaim with the model repository, when model_source is pvc."""
    oidc_issuer_url: str
    """Issuer of its service-account tokens, trusted by IAM."""
    gateway_service_type: Literal["ClusterIP", "LoadBalancer"]
    """Service type of the gateway."""
    cluster: PrivateClusterSettings | None
    """The machines to build it from (privateMachines); None when it exists (kubeconfig)."""


@dataclass(frozen=True)
class BurstSettings:
    """The AWS burst pool."""

    region: str
    """AWS region."""
    availability_zones: tuple[str, ...]
    """Zones of the VPC; empty means the region's first two."""
    vpc_cidr: str
    """IPv4 range of the VPC."""
    eks_version: str
    """Kubernetes major.minor of the cluster."""
    gpu_instance_types: tuple[str, ...]
    """GPU instance types, in order of preference."""
    gpu_node_disk_gib: int
    """Root volume of a GPU node."""
    spot_max_size: int
    """Most spot GPU nodes."""
    on_demand_max_size: int
    """Most on-demand GPU nodes."""
    system_instance_type: str
    """Instance type of system nodes."""
    system_min_size: int
    """Fewest system nodes."""
    system_max_size: int
    """Most system nodes."""
    load_balancer_scheme: Literal["internal", "internet-facing"]
    """Scheme of the burst Triton NLB."""
    allowed_cidrs: tuple[str, ...]
    """Source ranges allowed through the NLB: the private site's egress, never empty or /0."""
    admin_arns: tuple[str, ...]
    """Extra cluster admins."""
    api_public_cidrs: tuple[str, ...]
    """IPv4 ranges allowed to the EKS API's public endpoint; empty means private endpoint only."""


@dataclass(frozen=True)
class StackSettings:
    """Everything the program needs, checked."""

    project: str
    stack: str
    workload: WorkloadSettings
    private: PrivateSiteSettings
    burst: BurstSettings


def load_settings(config: pulumi.Config) -> StackSettings:
    """Read and check the whole stack configuration; StackConfigError lists every problem."""
    read = ConfigReader(config)
    workload = _workload(read)
    private = _private(read, workload)
    burst = _burst(read, workload)
    if read.problems:
        lines = "\n".join(f"  {problem}" for problem in read.problems)
        raise StackConfigError(f"stack configuration is invalid:\n{lines}")
    return StackSettings(
        project=pulumi.get_project(),
        stack=pulumi.get_stack(),
        workload=cast(WorkloadSettings, workload),
        private=cast(PrivateSiteSettings, private),
        burst=cast(BurstSettings, burst),
    )


def _workload(read: ConfigReader) -> WorkloadSettings | None:
    namespace = read.text("namespace")
    document = read.controller_config("controllerConfig")
    deployments = _triton_deployments(read, document, namespace) if document and namespace else None
    private, burst, kubeconfig = deployments or (None, None, None)
    return _build(
        WorkloadSettings,
        namespace=namespace,
        triton_image=read.text("tritonImage"),
        gpus_per_replica=read.count("gpusPerReplica", minimum=1),
        model_store_prefix=read.pattern(
            "modelStorePrefix", S3_PREFIX, "an S3 key prefix like model_repo (letters, digits, /)"
        ),
        controller_image=read.text("controllerImage"),
        controller_config=document,
        private_triton=private,
        burst_tritons=burst,
        burst_kubeconfig_file=kubeconfig,
    )


def _triton_deployments(
    read: ConfigReader, document: SpilloverConfig, namespace: str
) -> tuple[TritonDeployment, tuple[TritonDeployment, ...], str] | None:
    """The Triton releases the controller's pools name: one private, one per burst pool.

    The program deploys exactly what the pools point at, so a pool naming another namespace,
    cluster or Deployment is a mistake to report now rather than a controller scaling nothing.
    """
    before = len(read.problems)
    private: list[TritonDeployment] = []
    burst: list[TritonDeployment] = []
    kubeconfigs: set[str] = set()
    for index, pool in enumerate(document.pools):
        key = f"controllerConfig.pools[{index}]"
        target = pool.kubernetes
        if pool.driver != "kubernetes" or target is None:
            read.problem(
                f"{key}.driver", "must be kubernetes with a kubernetes section in clusters"
            )
            continue
        if target.namespace != namespace:
            read.problem(
                f"{key}.kubernetes.namespace",
                f"is {target.namespace!r}, but Triton is deployed to namespace {namespace!r}",
            )
        if not RELEASE_NAME.match(target.deployment):
            read.problem(
                f"{key}.kubernetes.deployment",
                f"{target.deployment!r} must be a Helm release name (a-z, 0-9, -; 53 at most)",
            )
        triton = TritonDeployment(pool.name, target.deployment, pool.capacity_type)
        if pool.role == "private":
            if target.kubeconfig is not None:
                read.problem(f"{key}.kubernetes.kubeconfig", "must be unset: private is in-cluster")
            private.append(triton)
            continue
        directory, _, file = (target.kubeconfig or "").rpartition("/")
        if directory != KUBECONFIGS_DIR or not file:
            read.problem(
                f"{key}.kubernetes.kubeconfig",
                f"must be a file in {KUBECONFIGS_DIR} (where the burst kubeconfig is mounted), "
                f"got {target.kubeconfig!r}",
            )
        if target.metrics.via != "apiserver-proxy":
            read.problem(
                f"{key}.kubernetes.metrics.via",
                "must be apiserver-proxy: nothing routes from the private site to burst pod IPs, "
                "and the NLB would balance scrapes across pods",
            )
        kubeconfigs.add(file)
        burst.append(triton)
    if len(private) != 1:
        read.problem(
            "controllerConfig.pools", f"needs exactly one private pool, has {len(private)}"
        )
    if not burst:
        read.problem("controllerConfig.pools", "needs at least one burst pool")
    if len(kubeconfigs) > 1:
        read.problem(
            "controllerConfig.pools",
            f"burst pools read different kubeconfigs ({', '.join(sorted(kubeconfigs))}); "
            "there is one burst cluster",
        )
    names = [triton.deployment for triton in burst]
    if len(set(names)) != len(names):
        read.problem("controllerConfig.pools", "two burst pools name the same Deployment")
    if len(read.problems) > before:
        return None
    return private[0], tuple(burst), kubeconfigs.pop()


def _private(read: ConfigReader, workload: WorkloadSettings | None) -> PrivateSiteSettings | None:
    model_source = read.choice("privateModelSource", ("s3", "pvc"))
    model_pvc = read.text("privateModelPvc", required=model_source == "pvc")
    gpu_replicas = read.count("privateGpuReplicas", minimum=1)
    if workload and gpu_replicas is not None:
        _check_private_replicas(read, workload.controller_config, gpu_replicas)
    install_device_plugin = read.flag("privateInstallDevicePlugin")
    context = read.text("privateKubeContext", required=False) or None
    gpus_needed = (
        gpu_replicas * workload.gpus_per_replica if workload and gpu_replicas is not None else None
    )
    machines = read.structured("privateMachines", list)
    provisioned = bool(machines)
    cluster = read_private_cluster(read, machines, gpus_needed=gpus_needed) if machines else None
    kubeconfig = None if provisioned else read.secret_file("privateKubeconfig")
    if provisioned:
        _check_provisioned(read, context, install_device_plugin)
    site = _build(
        PrivateSiteSettings,
        kubeconfig=kubeconfig,
        context=context,
        gpu_replicas=gpu_replicas,
        install_device_plugin=install_device_plugin,
        gpu_node_label=read.node_label("privateGpuNodeLabel"),
        model_source=model_source,
        model_pvc=model_pvc or None,
        oidc_issuer_url=read.https_url("privateOidcIssuerUrl"),
        gateway_service_type=read.choice("gatewayServiceType", ("ClusterIP", "LoadBalancer")),
        cluster=cluster,
    )
    # Machines listed but not usable: their problems are recorded, and there is no kubeconfig.
    return None if provisioned and cluster is None else site


def _check_provisioned(read: ConfigReader, context: str | None, device_plugin: bool | None) -> None:
    """A cluster built from privateMachines: the ways of reaching an existing one are mistakes."""
    if (read.raw("privateKubeconfig", required=False) or "").strip():
        read.problem(
            "privateKubeconfig",
            "is set, and so is privateMachines: the program builds that cluster and uses its "
            "kubeconfig; unset one (pulumi config rm privateKubeconfig)",
        )
    if context:
        read.problem("privateKubeContext", "must be empty with privateMachines (one context)")
    if device_plugin is False:
        read.problem(
            "privateInstallDevicePlugin",
            "must be true with privateMachines: nothing else advertises nvidia.com/gpu there",
        )


def _check_private_replicas(read: ConfigReader, document: SpilloverConfig, replicas: int) -> None:
    """The controller cannot run more private replicas than the GPUs you own hold."""
    for index, pool in enumerate(document.pools):
        if pool.role == "private" and pool.max_replicas > replicas:
            read.problem(
                f"controllerConfig.pools[{index}].max_replicas",
                f"is {pool.max_replicas}, more than privateGpuReplicas ({replicas}), the "
                "replicas the private cluster's GPUs hold",
            )


def _burst(read: ConfigReader, workload: WorkloadSettings | None) -> BurstSettings | None:
    region = read.text("awsRegion")
    system_min = read.count("systemMinSize", minimum=1)
    system_max = read.count("systemMaxSize", minimum=1)
    if system_min is not None and system_max is not None and system_max < system_min:
        read.problem("systemMaxSize", f"is {system_max}, below systemMinSize ({system_min})")
    spot_max = read.count("spotMaxSize", minimum=0)
    on_demand_max = read.count("onDemandMaxSize", minimum=0)
    for key, size, capacity in (
        ("spotMaxSize", spot_max, "spot"),
        ("onDemandMaxSize", on_demand_max, "on-demand"),
    ):
        pools = [
            t.pool
            for t in (workload.burst_tritons if workload else ())
            if t.capacity_type == capacity
        ]
        if size == 0 and pools:
            read.problem(key, f"is 0, so there are no {capacity} nodes for pool {', '.join(pools)}")
    scheme = read.choice("burstLoadBalancerScheme", ("internal", "internet-facing"))
    allowed = read.cidrs("burstAllowedCidrs")
    # Kubernetes reads no source ranges as 0.0.0.0/0: the NLB would admit anyone who can reach it.
    if allowed == ():
        read.problem(
            "burstAllowedCidrs",
            f"is empty, so the {scheme or ''} NLB would admit every address that reaches it; "
            "list the private site's egress ranges (where the gateway's traffic comes from)",
        )
    for cidr in allowed or ():
        if ipaddress.ip_network(cidr, strict=False).prefixlen == 0:
            read.problem(
                "burstAllowedCidrs",
                f"{cidr} admits every address; list the private site's egress ranges instead",
            )
    zones = read.zones("availabilityZones", region)
    gpu_types = read.names("gpuInstanceTypes", minimum=1)
    _check_market_prices(read, workload, region, gpu_types, zones)
    return _build(
        BurstSettings,
        region=region,
        availability_zones=zones,
        vpc_cidr=read.vpc_cidr("vpcCidr"),
        eks_version=read.eks_version("eksVersion", tuple(CLUSTER_AUTOSCALER_IMAGE_TAGS)),
        gpu_instance_types=gpu_types,
        gpu_node_disk_gib=read.count("gpuNodeDiskGib", minimum=20),
        spot_max_size=spot_max,
        on_demand_max_size=on_demand_max,
        system_instance_type=read.text("systemInstanceType"),
        system_min_size=system_min,
        system_max_size=system_max,
        load_balancer_scheme=scheme,
        allowed_cidrs=allowed,
        admin_arns=read.names("burstAdminArns", minimum=0, prefix="arn:"),
        api_public_cidrs=read.public_ipv4_cidrs("burstApiPublicCidrs"),
    )


def _check_market_prices(
    read: ConfigReader,
    workload: WorkloadSettings | None,
    region: str | None,
    gpu_types: tuple[str, ...] | None,
    zones: tuple[str, ...] | None,
) -> None:
    """A burst pool priced from the market must ask about the node groups this stack makes:
    another region, type list or zone list would price instances the pool never runs on."""
    document = workload.controller_config if workload else None
    for index, pool in enumerate(document.pools if document else ()):
        market = pool.price.market
        if market is None:
            continue
        key = f"controllerConfig.pools[{index}].price.market"
        if region is not None and market.region != region:
            read.problem(f"{key}.region", f"is {market.region!r}; the burst pool is in {region!r}")
        if gpu_types is not None and tuple(market.instance_types) != gpu_types:
            read.problem(
                f"{key}.instance_types",
                f"is {market.instance_types}; the GPU node groups launch {list(gpu_types)} "
                "(gpuInstanceTypes, in that order)",
            )
        if zones and tuple(market.zones) != zones:
            read.problem(
                f"{key}.zones", f"is {market.zones}; the node groups are in {list(zones)}"
            )


def _build(cls: Callable[..., T], **fields: Any) -> T | None:
    """The settings object, or None when a field could not be read (its problem is recorded)."""
    if any(value is None for name, value in fields.items() if name not in _OPTIONAL):
        return None
    return cls(**fields)


_OPTIONAL = frozenset({"context", "model_pvc", "kubeconfig", "cluster"})
