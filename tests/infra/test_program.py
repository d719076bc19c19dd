"""What `pulumi up` hands back: where requests go, how to reach the burst cluster, the bucket."""

from __future__ import annotations

import re

import yaml

from tests.infra.conftest import BUCKET, Deployment, deploy, plain, stack_config


def test_the_stack_exports_what_operators_need(example: Deployment) -> None:
    assert set(example.outputs) == {
        "privateGatewayEndpoint",
        "burstEndpoints",
        "burstKubeconfig",
        "burstClusterName",
        "modelBucket",
        "burstCaCertificate",
        "burstTlsServerNames",
    }


def test_the_private_gateway_endpoint_is_its_service(example: Deployment) -> None:
    assert example.outputs["privateGatewayEndpoint"] == (
        "http://spillover-gateway.spillover.svc.cluster.local:8000"
    )


def test_each_burst_pool_has_its_nlb_endpoint(example: Deployment) -> None:
    burst_pools = [
        pool["name"]
        for pool in stack_config()["controllerConfig"]["pools"]
        if pool["role"] == "burst"
    ]
    endpoints = example.outputs["burstEndpoints"]
    assert sorted(endpoints) == sorted(burst_pools)
    for pool, url in endpoints.items():
        assert url.startswith("https://") and ".elb.us-east-1.amazonaws.com:8000" in url, pool


def test_the_burst_kubeconfig_is_exported_as_a_secret(example: Deployment) -> None:
    assert "burstKubeconfig" in example.secret_outputs
    kubeconfig = yaml.safe_load(example.outputs["burstKubeconfig"])
    assert kubeconfig["current-context"] == example.outputs["burstClusterName"] == "spillover-test"


def test_the_model_bucket_is_exported(example: Deployment) -> None:
    assert example.outputs["modelBucket"] == BUCKET


def test_the_burst_kubeconfig_is_what_the_controller_mounts(example: Deployment) -> None:
    (secret,) = example.of_type("kubernetes:core/v1:Secret")
    assert secret.provider == "private-k8s"
    (content,) = plain(secret.inputs["stringData"]).values()
    assert content == example.outputs["burstKubeconfig"]


def test_the_runtime_package_never_imports_pulumi() -> None:
    """spillover/ runs in pods and on laptops without Pulumi; only infra/ may import it."""
    from tests.infra.conftest import REPOSITORY

    importers = [
        str(path.relative_to(REPOSITORY))
        for path in (REPOSITORY / "spillover").rglob("*.py")
        if re.search(r"^\s*(import|from)\s+pulumi", path.read_text(), re.MULTILINE)
    ]
    assert not importers, importers


def test_no_private_device_plugin_where_one_already_runs() -> None:
    deployment = deploy(stack_config(privateInstallDevicePlugin=False))
    plugins = [
        r.provider
        for r in deployment.of_type("kubernetes:helm.sh/v3:Release")
        if r.inputs["name"] == "nvidia-device-plugin"
    ]
    assert plugins == ["burst-k8s"]
