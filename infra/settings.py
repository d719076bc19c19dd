"""Stack configuration, read once into frozen settings; a value that cannot work names its key.

Types, defaults and descriptions live in Pulumi.yaml and nowhere else: this module requires every
key (the Pulumi CLI fills in the declared defaults) and checks what a type cannot say, such as a
maximum below a minimum. The controller's document is validated by spillover.config, the one
schema the controller itself loads.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

import pulumi

from spillover.config import ConfigError, SpilloverConfig, parse_config

KUBECONFIGS_DIR = "/etc/spillover/kubeconfigs"
"""Where the controller chart mounts the Secret with other clusters' kubeconfigs."""

RELEASE_NAME = re.compile(r"^[a-z]([a-z0-9-]{0,51}[a-z0-9])?$")
"""A Helm release name (53 characters at most), which also names the Triton Deployment."""

S3_PREFIX = re.compile(r"^[A-Za-z0-9!_.*'()=+-]+(/[A-Za-z0-9!_.*'()=+-]+)*$")
"""A key prefix without slashes at either end, as the Triton chart's schema accepts."""

T = TypeVar("T")


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

    kubeconfig: pulumi.Output[str]
    """Its kubeconfig, a secret."""
    context: str | None
    """Context within the kubeconfig; None means its current-context."""
    gpu_replicas: int
    """Triton replicas its GPUs hold: the private pool's ceiling and its gateway slots."""
    install_device_plugin: bool
    """Whether to install NVIDIA's device plugin."""
    model_source: Literal["s3", "pvc"]
    """Where private Triton reads models from."""
    model_pvc: str | None
    """PersistentVolumeClaim with the model repository, when model_source is pvc."""
    oidc_issuer_url: str
    """Issuer of its service-account tokens, trusted by IAM."""
    gateway_service_type: Literal["ClusterIP", "LoadBalancer"]
    """Service type of the gateway."""


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
    """Source ranges allowed through the NLB."""
    admin_arns: tuple[str, ...]
    """Extra cluster admins."""


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
    read = _Reader(config)
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


def _workload(read: _Reader) -> WorkloadSettings | None:
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
    read: _Reader, document: SpilloverConfig, namespace: str
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


def _private(read: _Reader, workload: WorkloadSettings | None) -> PrivateSiteSettings | None:
    kubeconfig = read.secret_file("privateKubeconfig")
    model_source = read.choice("privateModelSource", ("s3", "pvc"))
    model_pvc = read.text("privateModelPvc", required=model_source == "pvc")
    gpu_replicas = read.count("privateGpuReplicas", minimum=1)
    if workload and gpu_replicas is not None:
        _check_private_replicas(read, workload.controller_config, gpu_replicas)
    return _build(
        PrivateSiteSettings,
        kubeconfig=pulumi.Output.secret(kubeconfig) if kubeconfig else None,
        context=read.text("privateKubeContext", required=False) or None,
        gpu_replicas=gpu_replicas,
        install_device_plugin=read.flag("privateInstallDevicePlugin"),
        model_source=model_source,
        model_pvc=model_pvc or None,
        oidc_issuer_url=read.https_url("privateOidcIssuerUrl"),
        gateway_service_type=read.choice("gatewayServiceType", ("ClusterIP", "LoadBalancer")),
    )


def _check_private_replicas(read: _Reader, document: SpilloverConfig, replicas: int) -> None:
    """The controller cannot run more private replicas than the GPUs you own hold."""
    for index, pool in enumerate(document.pools):
        if pool.role == "private" and pool.max_replicas > replicas:
            read.problem(
                f"controllerConfig.pools[{index}].max_replicas",
                f"is {pool.max_replicas}, more than privateGpuReplicas ({replicas}), the "
                "replicas the private cluster's GPUs hold",
            )


def _burst(read: _Reader, workload: WorkloadSettings | None) -> BurstSettings | None:
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
    if scheme == "internet-facing" and allowed == ():
        read.problem(
            "burstAllowedCidrs",
            "is empty, so an internet-facing NLB would open Triton to the whole internet; "
            "list the private gateway's egress ranges",
        )
    return _build(
        BurstSettings,
        region=region,
        availability_zones=read.zones("availabilityZones", region),
        vpc_cidr=read.vpc_cidr("vpcCidr"),
        eks_version=read.eks_version("eksVersion"),
        gpu_instance_types=read.names("gpuInstanceTypes", minimum=1),
        gpu_node_disk_gib=read.count("gpuNodeDiskGib", minimum=20),
        spot_max_size=spot_max,
        on_demand_max_size=on_demand_max,
        system_instance_type=read.text("systemInstanceType"),
        system_min_size=system_min,
        system_max_size=system_max,
        load_balancer_scheme=scheme,
        allowed_cidrs=allowed,
        admin_arns=read.names("burstAdminArns", minimum=0, prefix="arn:"),
    )


def _build(cls: Callable[..., T], **fields: Any) -> T | None:
    """The settings object, or None when a field could not be read (its problem is recorded)."""
    if any(value is None for name, value in fields.items() if name not in _OPTIONAL):
        return None
    return cls(**fields)


_OPTIONAL = frozenset({"context", "model_pvc"})


class _Reader:
    """Reads raw stack config values, recording a problem per bad key instead of stopping."""

    def __init__(self, config: pulumi.Config) -> None:
        self._config = config
        self.problems: list[str] = []

    def problem(self, key: str, reason: str) -> None:
        self.problems.append(f"{self._config.name}:{key}: {reason}")

    def raw(self, key: str, required: bool = True) -> str | None:
        value = self._config.get(key)
        if value is None and required:
            self.problem(key, f"is not set: pulumi config set {key} <value>")
        return value

    def secret_file(self, key: str) -> str | None:
        """A secret whose value is a whole file (a kubeconfig)."""
        value = self._config.get(key)
        if value is None or not value.strip():
            self.problem(key, f"is not set: pulumi config set --secret {key} < <file>")
            return None
        return value

    def text(self, key: str, required: bool = True) -> str | None:
        value = self.raw(key, required)
        if value is None:
            return None if required else ""
        value = value.strip()
        if not value and required:
            self.problem(key, "is empty")
            return None
        return value

    def pattern(self, key: str, pattern: re.Pattern[str], meaning: str) -> str | None:
        value = self.text(key)
        if value is not None and not pattern.match(value):
            self.problem(key, f"must be {meaning}, got {value!r}")
            return None
        return value

    def count(self, key: str, minimum: int) -> int | None:
        value = self.raw(key)
        if value is None:
            return None
        try:
            number = int(value)
        except ValueError:
            self.problem(key, f"must be a whole number, got {value!r}")
            return None
        if number < minimum:
            self.problem(key, f"must be at least {minimum}, got {number}")
            return None
        return number

    def flag(self, key: str) -> bool | None:
        value = self.raw(key)
        if value is None:
            return None
        if value.lower() not in ("true", "false"):
            self.problem(key, f"must be true or false, got {value!r}")
            return None
        return value.lower() == "true"

    def choice(self, key: str, options: tuple[str, ...]) -> Any:
        value = self.text(key)
        if value is not None and value not in options:
            self.problem(key, f"must be one of {', '.join(options)}; got {value!r}")
            return None
        return value

    def structured(self, key: str, kind: type) -> Any:
        value = self.raw(key)
        if value is None:
            return None
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, kind):
            self.problem(key, f"must be a{'n' if kind is list else ''} {kind.__name__}")
            return None
        return parsed

    def names(self, key: str, minimum: int, prefix: str = "") -> tuple[str, ...] | None:
        items = self.structured(key, list)
        if items is None:
            return None
        if any(not isinstance(item, str) or not item.startswith(prefix) for item in items):
            self.problem(key, f"must be a list of strings{f' starting {prefix}' if prefix else ''}")
            return None
        if len(set(items)) != len(items):
            self.problem(key, "lists an entry twice")
            return None
        if len(items) < minimum:
            self.problem(key, f"must list at least {minimum}, got {len(items)}")
            return None
        return tuple(items)

    def zones(self, key: str, region: str | None) -> tuple[str, ...] | None:
        zones = self.names(key, minimum=0)
        if zones is None:
            return None
        if len(zones) == 1:
            self.problem(key, "must list at least two zones: EKS needs subnets in two")
            return None
        strangers = [zone for zone in zones if region and not zone.startswith(region)]
        if strangers:
            self.problem(key, f"{', '.join(strangers)} not in awsRegion {region}")
            return None
        return zones

    def cidrs(self, key: str) -> tuple[str, ...] | None:
        ranges = self.names(key, minimum=0)
        if ranges is None:
            return None
        for cidr in ranges:
            try:
                ipaddress.ip_network(cidr)
            except ValueError:
                self.problem(key, f"{cidr!r} is not a CIDR range")
                return None
        return ranges

    def vpc_cidr(self, key: str) -> str | None:
        value = self.text(key)
        if value is None:
            return None
        try:
            network = ipaddress.IPv4Network(value, strict=False)
        except ValueError:
            self.problem(key, f"{value!r} is not an IPv4 CIDR range (like 10.42.0.0/16)")
            return None
        if str(network) != value:
            self.problem(key, f"{value!r} has host bits set; the range is {network}")
            return None
        if not 16 <= network.prefixlen <= 20:
            self.problem(key, f"must be /16 to /20 (EKS pods take an address each), got {value}")
            return None
        return str(network)

    def eks_version(self, key: str) -> str | None:
        value = self.text(key)
        parts = value.split(".") if value else []
        if value is not None and (len(parts) != 2 or not all(part.isdigit() for part in parts)):
            self.problem(key, f"must be major.minor like 1.33, got {value!r}")
            return None
        return value

    def https_url(self, key: str) -> str | None:
        value = self.text(key)
        if value is not None and not value.startswith("https://"):
            self.problem(key, f"must be an https:// URL (STS fetches its keys), got {value!r}")
            return None
        return value.rstrip("/") if value else None

    def controller_config(self, key: str) -> SpilloverConfig | None:
        document = self.structured(key, dict)
        if document is None:
            return None
        try:
            return parse_config(document, source=f"{self._config.name}:{key}")
        except ConfigError as error:
            self.problems.append(str(error))
            return None
