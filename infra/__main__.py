"""spillover's clusters: the private GPU site and the AWS burst pool it spills over to.

Wiring only: stack config -> providers -> components -> exports. What each part builds is in
components/; what each setting means is in ../Pulumi.yaml.
"""

from pathlib import Path

import pulumi
import pulumi_aws as aws

from components.burst_pool import BurstPool
from components.burst_tls import BurstTls
from components.chart_values import TRITON_HTTP_PORT
from components.identity import PrivateSiteIdentity
from components.model_store import ModelStore
from components.private_cluster import PrivateCluster
from components.private_site import PrivateSite
from components.tagging import CostTagger
from settings import load_settings

REPOSITORY = Path(__file__).resolve().parent.parent

settings = load_settings(pulumi.Config())
tagger = CostTagger(settings.project, settings.stack)

# Default tags reach every AWS resource that takes tags; components override pool and component.
aws_provider = aws.Provider(
    "aws",
    region=settings.burst.region,
    default_tags=aws.ProviderDefaultTagsArgs(tags=tagger("shared", "spillover")),
)

store = ModelStore(
    "model-store",
    model_repo=REPOSITORY / "model_repo",
    prefix=settings.workload.model_store_prefix,
    tagger=tagger,
    provider=aws_provider,
)
burst_tls = BurstTls(
    "burst-tls",
    deployments=[triton.deployment for triton in settings.workload.burst_tritons],
    tagger=tagger,
    provider=aws_provider,
)
burst = BurstPool(
    "burst",
    burst=settings.burst,
    workload=settings.workload,
    charts_dir=REPOSITORY / "charts",
    bucket_name=store.bucket_name,
    bucket_arn=store.bucket_arn,
    tagger=tagger,
    provider=aws_provider,
    certificate_arn=burst_tls.certificate_arn,
)
identity = PrivateSiteIdentity(
    "identity",
    issuer_url=settings.private.oidc_issuer_url,
    workload=settings.workload,
    cluster_name=burst.cluster.name,
    bucket_arn=store.bucket_arn if settings.private.model_source == "s3" else None,
    tagger=tagger,
    provider=aws_provider,
    burst_provider=burst.provider,
    burst_namespace=burst.namespace,
)
# Built from privateMachines when the stack lists them; otherwise it exists (privateKubeconfig).
cluster = (
    PrivateCluster(
        "private-cluster",
        cluster=settings.private.cluster,
        gpu_node_label=settings.private.gpu_node_label,
        oidc_issuer_url=settings.private.oidc_issuer_url,
    )
    if settings.private.cluster
    else None
)
private = PrivateSite(
    "private",
    private=settings.private,
    kubeconfig=cluster.kubeconfig if cluster else settings.private.kubeconfig,
    workload=settings.workload,
    charts_dir=REPOSITORY / "charts",
    region=settings.burst.region,
    bucket_name=store.bucket_name,
    triton_role_arn=identity.triton_role_arn,
    controller_role_arn=identity.controller_role_arn,
    burst_hostnames=burst.endpoint_hostnames,
    burst_slots=burst.zone_count,
    burst_ca_certificate=burst_tls.ca_certificate,
    burst_server_names=burst_tls.server_names,
    burst_kubeconfig=burst.kubeconfig,
)

pulumi.export("privateGatewayEndpoint", private.gateway_endpoint)
pulumi.export(
    "burstEndpoints",
    {
        pool: pulumi.Output.format("https://{0}:{1}", hostname, TRITON_HTTP_PORT)
        for pool, hostname in burst.endpoint_hostnames.items()
    },
)
# What a client other than the gateway needs to verify a burst NLB: trust this CA and ask for
# the pool's name (curl --cacert ca.pem --connect-to NAME:8000:NLB:8000 https://NAME:8000/...).
pulumi.export("burstCaCertificate", burst_tls.ca_certificate)
pulumi.export(
    "burstTlsServerNames",
    {
        triton.pool: burst_tls.server_names[triton.deployment]
        for triton in settings.workload.burst_tritons
    },
)
pulumi.export("burstKubeconfig", burst.kubeconfig)
pulumi.export("burstClusterName", burst.cluster_name)
pulumi.export("modelBucket", store.bucket_name)
if cluster:
    pulumi.export("privateKubeconfig", cluster.kubeconfig)
