"""Cluster-admin access entries of the burst cluster: the identity running `pulumi up`, and more.

EKS's implicit creator entry (bootstrap_cluster_creator_admin_permissions) is off, so every
admin is declared here, once: a second entry for one principal is refused (409). Each entry's
resource name comes from its principal, not from who deploys or a list position, so a principal
keeps its one entry when someone else runs `pulumi up` or burstAdminArns is reordered; a
replacement would create the new entry before deleting the old one and collide.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

CLUSTER_ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"


def deploying_principal(opts: pulumi.InvokeOptions) -> str:
    """The IAM role (with its path) or user behind the credentials running `pulumi up`.

    STS names an assumed role arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION; an access entry
    needs the role's IAM ARN, path included, such as
    arn:aws:iam::ACCOUNT:role/aws-reserved/sso.amazonaws.com/REGION/AWSReservedSSO_... for an
    IAM Identity Center role. The session context looks it up (iam:GetRole on that role).
    """
    caller = aws.get_caller_identity(opts=opts)
    return aws.iam.get_session_context(arn=caller.arn, opts=opts).issuer_arn


def entry_name(prefix: str, principal_arn: str) -> str:
    """A resource name that only this principal gets: its last ARN segment and a digest."""
    readable = re.sub(r"[^A-Za-z0-9-]", "-", principal_arn.rsplit("/", 1)[-1])[:40]
    digest = hashlib.sha256(principal_arn.encode()).hexdigest()[:8]
    return f"{prefix}-{readable}-{digest}"


def cluster_admins(
    prefix: str,
    *,
    cluster: aws.eks.Cluster,
    principal_arns: Sequence[str],
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> list[aws.eks.AccessPolicyAssociation]:
    """One STANDARD access entry with cluster-admin per distinct principal, after the cluster."""
    associations = []
    for principal_arn in dict.fromkeys(principal_arns):
        name = entry_name(prefix, principal_arn)
        entry = aws.eks.AccessEntry(
            name,
            cluster_name=cluster.name,
            principal_arn=principal_arn,
            type="STANDARD",
            tags=tags,
            opts=opts,
        )
        associations.append(
            aws.eks.AccessPolicyAssociation(
                f"{name}-cluster-admin",
                cluster_name=cluster.name,
                principal_arn=entry.principal_arn,
                policy_arn=CLUSTER_ADMIN_POLICY,
                access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                opts=opts,
            )
        )
    return associations
