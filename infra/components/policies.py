"""IAM policy documents, as plain functions of ARNs so tests and reviewers can read them.

Least privilege throughout: actions are spelled out (never `*`), write actions are scoped to the
resources they act on, and only read-only Describe/List calls that IAM cannot scope use `*`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pulumi

STS_AUDIENCE = "sts.amazonaws.com"


def _document(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def service_trust(service: str) -> str:
    """Trust policy letting an AWS service (eks.amazonaws.com, ec2.amazonaws.com) assume a role."""
    return _document(
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    )


def web_identity_trust(
    provider_arn: pulumi.Input[str],
    issuer_url: pulumi.Input[str],
    namespace: str,
    service_accounts: Sequence[str],
) -> pulumi.Output[str]:
    """IRSA: only these Kubernetes service accounts, with tokens meant for STS, may assume it."""
    subjects = [f"system:serviceaccount:{namespace}:{account}" for account in service_accounts]

    def render(arn: str, issuer: str) -> str:
        host_path = issuer.removeprefix("https://")
        return _document(
            {
                "Effect": "Allow",
                "Principal": {"Federated": arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{host_path}:sub": subjects[0] if len(subjects) == 1 else subjects,
                        f"{host_path}:aud": STS_AUDIENCE,
                    }
                },
            }
        )

    return pulumi.Output.all(provider_arn, issuer_url).apply(lambda args: render(*args))


def model_read(bucket_arn: pulumi.Input[str], prefix: str) -> pulumi.Output[str]:
    """Read the model repository under one prefix of one bucket; nothing else, no writes."""

    def render(arn: str) -> str:
        return _document(
            {
                "Sid": "ListModelRepository",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": arn,
                # IfExists: Triton's S3 filesystem first calls HeadBucket, which IAM authorizes
                # as s3:ListBucket with no s3:prefix key, and a plain StringLike on a missing
                # key is false (403, Triton exits). A listing that names a prefix stays confined.
                "Condition": {"StringLikeIfExists": {"s3:prefix": [prefix, f"{prefix}/*"]}},
            },
            {
                "Sid": "ReadModelFiles",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": f"{arn}/{prefix}/*",
            },
        )

    return pulumi.Output.from_input(bucket_arn).apply(render)


def cluster_autoscaler(
    cluster_name: str, nodegroup_arns: Sequence[pulumi.Input[str]]
) -> pulumi.Output[str]:
    """What the cluster autoscaler needs on AWS, after its documented minimal policy.

    It may only resize and terminate in Auto Scaling groups tagged as owned by this cluster
    (EKS tags its managed node groups' groups so), and read only this cluster's node groups.
    """

    def render(arns: list[str]) -> str:
        return _document(
            {
                "Sid": "DiscoverNodeGroups",
                "Effect": "Allow",
                "Action": [
                    "autoscaling:DescribeAutoScalingGroups",
                    "autoscaling:DescribeAutoScalingInstances",
                    "autoscaling:DescribeLaunchConfigurations",
                    "autoscaling:DescribeScalingActivities",
                    "autoscaling:DescribeTags",
                    "ec2:DescribeImages",
                    "ec2:DescribeInstanceTypes",
                    "ec2:DescribeLaunchTemplateVersions",
                    "ec2:GetInstanceTypesFromInstanceRequirements",
                ],
                # These Describe calls cannot be scoped to resources in IAM.
                "Resource": "*",
            },
            {
                "Sid": "ReadThisClustersNodeGroups",
                "Effect": "Allow",
                "Action": ["eks:DescribeNodegroup"],
                "Resource": arns,
            },
            {
                "Sid": "ResizeThisClustersGroups",
                "Effect": "Allow",
                "Action": [
                    "autoscaling:SetDesiredCapacity",
                    "autoscaling:TerminateInstanceInAutoScalingGroup",
                ],
                "Resource": "*",
                "Condition": {
                    "StringEquals": {
                        f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster_name}": "owned",
                    }
                },
            },
        )

    return pulumi.Output.all(*nodegroup_arns).apply(lambda arns: render(list(arns)))


CONTROLLER_AWS_CALLS: dict[str, str] = {
    "ec2:DescribeSpotPriceHistory": "spot burst pools priced from the market (price.market): "
    "the lowest current spot price of the node group's instance types in its zones",
    "pricing:GetProducts": "on-demand burst pools priced from the market: the instance's "
    "on-demand list price (the config's price book when this is denied)",
    "ce:GetCostAndUsage": "`spillover spend reconcile`: the month's bill grouped by the "
    "spillover:pool cost-allocation tag, to compare with the ledger",
}
"""AWS actions the controller (spillover/) calls, exactly, each with why; tests/infra derive
the set from the code (spillover/drivers/aws_prices.py) and fail when the two differ.

Its role is also its identity: the burst cluster's access entry maps it to a Kubernetes group,
and the EKS token it presents (a presigned sts:GetCallerIdentity) needs no IAM permission.
"""
CONTROLLER_AWS_ACTIONS: frozenset[str] = frozenset(CONTROLLER_AWS_CALLS)


def controller() -> str | None:
    """The controller's permissions policy, or None when it calls no AWS API (no policy at all).

    One statement per action, its Sid saying why. Resource is "*" because none of these
    actions has a resource type in the Service Authorization Reference (EC2's
    DescribeSpotPriceHistory, the Price List's GetProducts, Cost Explorer's GetCostAndUsage):
    IAM requires "*" for such actions, and read-only prices and bills are all they reveal.
    """
    if not CONTROLLER_AWS_ACTIONS:
        return None
    return _document(
        *(
            {
                "Sid": _sid(action),
                "Effect": "Allow",
                "Action": [action],
                "Resource": "*",
            }
            for action, _reason in sorted(CONTROLLER_AWS_CALLS.items())
        )
    )


def _sid(action: str) -> str:
    """ec2:DescribeSpotPriceHistory -> ControllerEc2DescribeSpotPriceHistory (Sids are alphanumeric)."""
    service, _, name = action.partition(":")
    return f"Controller{service.capitalize()}{name}"


def deny_insecure_transport(bucket_arn: pulumi.Input[str]) -> pulumi.Output[str]:
    """Bucket policy: refuse any request not made over TLS."""

    def render(arn: str) -> str:
        return _document(
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [arn, f"{arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        )

    return pulumi.Output.from_input(bucket_arn).apply(render)
