"""TLS on the cross-site hop: a private CA and the burst NLBs' certificate, made by the program.

User ids and histories cross from the private site to the burst NLBs over the internet or a VPN.
The NLB terminates TLS (a TLS listener per inference port, with this certificate imported into
ACM); the gateway's HAProxy verifies it against this CA and the pool's name. Chosen over TLS in
the Triton pod because Triton's HTTP endpoint has no TLS (only gRPC has --grpc-use-ssl), and a
sidecar per GPU replica would add a process and CPU to every pod for what the NLB does for
free; the hop from NLB to pod stays inside the burst VPC.

The certificate names each pool `<deployment>.<SERVER_NAME_SUFFIX>`, not the NLB's DNS name:
the Service needs the certificate's ARN when it is created, before AWS has named its NLB, and
a recreated Service gets a new name. HAProxy connects to the NLB's addresses and sends the
stable name as SNI and checks it (verifyhost); the name never has to resolve.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws
import pulumi_tls as tls

from components.tagging import CostTagger

SERVER_NAME_SUFFIX = "burst.spillover.internal"
"""Under .internal, which ICANN reserves for private use: it can never name a public host."""
CA_VALIDITY_HOURS = 10 * 365 * 24
SERVER_VALIDITY_HOURS = 2 * 365 * 24
SERVER_EARLY_RENEWAL_HOURS = 60 * 24
"""A `pulumi up` within 60 days of the server certificate's expiry renews it (ACM re-import
keeps the ARN, so the NLBs pick it up in place)."""
NEGOTIATION_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
"""TLS 1.3 and 1.2 only, AWS's recommended NLB policy."""
_KEY = {"algorithm": "RSA", "rsa_bits": 2048}
"""RSA 2048: what ACM imports and every NLB TLS listener serves."""
_PRIVATE_OUTPUTS = ["privateKeyPem", "privateKeyPemPkcs8", "privateKeyOpenssh"]


def server_name(deployment: str) -> str:
    """The name the burst pool's certificate carries and the gateway verifies."""
    return f"{deployment}.{SERVER_NAME_SUFFIX}"


class BurstTls(pulumi.ComponentResource):
    """A private CA, a server certificate for every burst pool's name, and its ACM import."""

    ca_certificate: pulumi.Output[str]
    """The CA certificate (public), which the gateway trusts."""
    certificate_arn: pulumi.Output[str]
    """The server certificate in ACM, for the NLBs' TLS listeners."""
    server_names: dict[str, str]
    """Each burst Deployment's name as its certificate carries it."""

    def __init__(
        self,
        name: str,
        *,
        deployments: Sequence[str],
        tagger: CostTagger,
        provider: aws.Provider,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("spillover:burst_tls:BurstTls", name, None, opts)
        # The provider marks private keys secret too; saying it here keeps it so if it stops.
        secret = pulumi.ResourceOptions(parent=self, additional_secret_outputs=_PRIVATE_OUTPUTS)
        child = pulumi.ResourceOptions(parent=self)
        subject = f"spillover {tagger.project}/{tagger.stack}"
        ca_key = tls.PrivateKey(f"{name}-ca-key", **_KEY, opts=secret)
        ca_cert = tls.SelfSignedCert(
            f"{name}-ca",
            private_key_pem=ca_key.private_key_pem,
            is_ca_certificate=True,
            subject=tls.SelfSignedCertSubjectArgs(common_name=f"{subject} burst CA"),
            allowed_uses=["cert_signing", "crl_signing"],
            validity_period_hours=CA_VALIDITY_HOURS,
            opts=child,
        )
        self.server_names = {deployment: server_name(deployment) for deployment in deployments}
        server_key = tls.PrivateKey(f"{name}-server-key", **_KEY, opts=secret)
        request = tls.CertRequest(
            f"{name}-server-request",
            private_key_pem=server_key.private_key_pem,
            subject=tls.CertRequestSubjectArgs(common_name=f"{subject} burst NLB"),
            dns_names=sorted(self.server_names.values()),
            opts=child,
        )
        server_cert = tls.LocallySignedCert(
            f"{name}-server",
            cert_request_pem=request.cert_request_pem,
            ca_private_key_pem=ca_key.private_key_pem,
            ca_cert_pem=ca_cert.cert_pem,
            allowed_uses=["digital_signature", "key_encipherment", "server_auth"],
            validity_period_hours=SERVER_VALIDITY_HOURS,
            early_renewal_hours=SERVER_EARLY_RENEWAL_HOURS,
            opts=child,
        )
        certificate = aws.acm.Certificate(
            f"{name}-certificate",
            private_key=pulumi.Output.secret(server_key.private_key_pem),
            certificate_body=server_cert.cert_pem,
            certificate_chain=ca_cert.cert_pem,
            tags=tagger("burst", "tls"),
            opts=pulumi.ResourceOptions(parent=self, provider=provider),
        )
        self.ca_certificate = ca_cert.cert_pem
        self.certificate_arn = certificate.arn
        self.register_outputs(
            {
                "ca_certificate": self.ca_certificate,
                "certificate_arn": self.certificate_arn,
                "server_names": self.server_names,
            }
        )
