"""TLS on the cross-site hop: the program's own CA, the NLBs' TLS listeners, the gateway verifying.

User ids and histories cross from the private site to the burst NLBs; they must do so only
encrypted, to a listener the gateway has verified, through an NLB that admits only the
private site's egress ranges and carries no metrics port.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import (
    Deployment,
    deploy,
    is_secret_input,
    mock_pem,
    plain,
    stack_config,
)
from tests.infra.test_chart_releases import one, render

PRIVATE_KEY = "tls:index/privateKey:PrivateKey"
CA_CERT = "tls:index/selfSignedCert:SelfSignedCert"
SERVER_CERT = "tls:index/locallySignedCert:LocallySignedCert"
CERT_REQUEST = "tls:index/certRequest:CertRequest"
ACM = "aws:acm/certificate:Certificate"
RELEASE = "kubernetes:helm.sh/v3:Release"
ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer-"
BURST_DEPLOYMENTS = ("triton-recommender-spot", "triton-recommender-ondemand")


def release_values(deployment: Deployment, name: str) -> dict[str, Any]:
    (found,) = [r for r in deployment.of_type(RELEASE) if r.inputs.get("name") == name]
    values: dict[str, Any] = plain(found.inputs)["values"]
    return values


def test_the_program_makes_a_ca_and_signs_the_nlbs_certificate(example: Deployment) -> None:
    (ca,) = example.of_type(CA_CERT)
    assert ca.inputs["isCaCertificate"] is True
    assert set(ca.inputs["allowedUses"]) == {"cert_signing", "crl_signing"}
    (server,) = example.of_type(SERVER_CERT)
    assert server.inputs["caCertPem"] == mock_pem("CERTIFICATE", ca.name), "signed by its own CA"
    assert "server_auth" in server.inputs["allowedUses"]
    assert server.inputs["earlyRenewalHours"] > 0, "a pulumi up renews it before it expires"
    (request,) = example.of_type(CERT_REQUEST)
    names = sorted(f"{d}.burst.spillover.internal" for d in BURST_DEPLOYMENTS)
    assert sorted(request.inputs["dnsNames"]) == names


def test_private_keys_stay_pulumi_secrets(example: Deployment) -> None:
    keys = example.of_type(PRIVATE_KEY)
    assert len(keys) == 2, "the CA's key and the server's"
    for key in keys:
        secret = example.options[(PRIVATE_KEY, key.name)].additional_secret_outputs or []
        assert "privateKeyPem" in secret, f"{key.name}'s private key would be stored in plaintext"
    (server,) = example.of_type(SERVER_CERT)
    assert is_secret_input(server.inputs["caPrivateKeyPem"]), "the CA key must reach it as secret"
    (certificate,) = example.of_type(ACM)
    assert is_secret_input(certificate.inputs["privateKey"])
    for name, value in example.outputs.items():
        assert "PRIVATE KEY" not in str(value), f"stack output {name} carries a private key"


def test_the_nlbs_certificate_is_imported_into_acm_with_its_chain(example: Deployment) -> None:
    (certificate,) = example.of_type(ACM)
    (ca,) = example.of_type(CA_CERT)
    (server,) = example.of_type(SERVER_CERT)
    assert certificate.inputs["certificateBody"] == mock_pem("CERTIFICATE", server.name)
    assert certificate.inputs["certificateChain"] == mock_pem("CERTIFICATE", ca.name)
    assert example.outputs["burstCaCertificate"] == mock_pem("CERTIFICATE", ca.name)


@pytest.mark.parametrize("deployment", BURST_DEPLOYMENTS)
def test_each_nlb_listens_with_tls_on_the_inference_ports_only(
    example: Deployment, deployment: str
) -> None:
    service = release_values(example, deployment)["service"]
    annotations = service["annotations"]
    (certificate,) = example.of_type(ACM)
    assert annotations[ANNOTATION + "ssl-cert"] == (
        f"arn:aws:acm:us-east-1:123456789012:{certificate.name}"
    )
    assert annotations[ANNOTATION + "ssl-ports"] == "http,grpc"
    assert annotations[ANNOTATION + "ssl-negotiation-policy"].startswith("ELBSecurityPolicy-TLS13")
    assert service["exposeMetrics"] is False
    # What Kubernetes gets: the Service's ports are exactly the TLS listeners'.
    (release,) = [r for r in example.of_type(RELEASE) if r.inputs.get("name") == deployment]
    rendered = one(render(release), "Service", deployment)
    assert [p["name"] for p in rendered["spec"]["ports"]] == ["http", "grpc"]
    assert 8002 not in [p["port"] for p in rendered["spec"]["ports"]], "metrics on the NLB"


def test_the_nlbs_admit_only_the_private_sites_egress_ranges() -> None:
    ranges = ["198.51.100.0/24", "203.0.113.17/32"]
    deployment = deploy(stack_config(burstAllowedCidrs=ranges))
    for name in BURST_DEPLOYMENTS:
        (release,) = [r for r in deployment.of_type(RELEASE) if r.inputs.get("name") == name]
        rendered = one(render(release), "Service", name)
        assert rendered["spec"]["loadBalancerSourceRanges"] == ranges


def test_the_gateway_verifies_each_burst_pool_against_the_programs_ca(
    example: Deployment,
) -> None:
    values = release_values(example, "spillover-gateway")
    (ca,) = example.of_type(CA_CERT)
    assert values["burstTls"] == {
        "enabled": True,
        "caCertificate": mock_pem("CERTIFICATE", ca.name),
    }
    (request,) = example.of_type(CERT_REQUEST)
    for pool in values["pools"]["burst"]:
        assert pool["tlsServerName"] in request.inputs["dnsNames"], pool["name"]
    (release,) = [
        r for r in example.of_type(RELEASE) if r.inputs.get("name") == "spillover-gateway"
    ]
    configmap = one(render(release), "ConfigMap", "spillover-gateway")
    assert configmap["data"]["burst-ca.crt"].strip() == mock_pem("CERTIFICATE", ca.name).strip()
    burst_servers = [
        line
        for line in configmap["data"]["haproxy.cfg"].splitlines()
        if line.strip().startswith("server-template burst_")
    ]
    assert len(burst_servers) == 4, "two burst pools, HTTP and gRPC each"
    for line in burst_servers:
        assert "ssl verify required ca-file /usr/local/etc/haproxy/burst-ca.crt" in line, line
        server_name = line.split(" sni str(")[1].split(")")[0]
        assert f"verifyhost {server_name}" in line, line
