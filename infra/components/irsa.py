"""IAM roles for Kubernetes service accounts (IRSA): short-lived credentials, no keys to leak."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

from components import policies

ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"
"""Service-account annotation the pod identity webhook turns into web-identity credentials."""


def service_account_role(
    name: str,
    *,
    oidc_provider_arn: pulumi.Input[str],
    issuer_url: pulumi.Input[str],
    namespace: str,
    service_accounts: Sequence[str],
    policy: pulumi.Input[str] | None,
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> aws.iam.Role:
    """A role only these service accounts of `namespace` can assume, allowed exactly `policy`.

    With no policy the role is an identity only (what EKS access entries map to Kubernetes).
    """
    role = aws.iam.Role(
        name,
        description=f"IRSA role of {', '.join(service_accounts)} in {namespace}",
        assume_role_policy=policies.web_identity_trust(
            oidc_provider_arn, issuer_url, namespace, service_accounts
        ),
        max_session_duration=3600,
        tags=tags,
        opts=opts,
    )
    if policy is not None:
        aws.iam.RolePolicy(f"{name}-policy", role=role.id, policy=policy, opts=opts)
    return role
