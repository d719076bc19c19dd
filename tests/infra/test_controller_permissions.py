"""The controller's IAM role grants exactly the AWS calls spillover/ makes, read from its code."""

from __future__ import annotations

import json

import pytest

from tests.infra.aws_calls import (
    UnreadableCall,
    calls_in_package,
    calls_in_source,
    needing_permission,
)
from tests.infra.conftest import REPOSITORY, Deployment

CONTROLLER_POLICY = "identity-controller-role-policy"


def granted_actions(deployment: Deployment) -> set[str]:
    """Actions the controller's role allows; a role without a policy allows none."""
    policies = deployment.of_type("aws:iam/rolePolicy:RolePolicy")
    mine = [r for r in policies if r.name == CONTROLLER_POLICY]
    granted: set[str] = set()
    for policy in mine:
        for statement in json.loads(policy.inputs["policy"])["Statement"]:
            action = statement["Action"]
            granted.update([action] if isinstance(action, str) else action)
    return granted


def test_the_controller_is_granted_exactly_the_calls_its_code_makes(example: Deployment) -> None:
    called = calls_in_package(REPOSITORY / "spillover")
    needed = needing_permission(called)
    granted = granted_actions(example)
    missing = {action: sorted(called[action]) for action in needed - granted}
    assert not missing, f"spillover/ calls these, the controller's role denies them: {missing}"
    assert granted == needed, f"granted but never called by spillover/: {granted - needed}"


def test_the_controller_role_cannot_change_node_groups(example: Deployment) -> None:
    granted = granted_actions(example)
    assert not {a for a in granted if a.startswith("eks:Update")}, granted


def test_the_scan_finds_client_calls_paginators_and_presigned_operations() -> None:
    source = """
import boto3
import botocore.session

ec2 = boto3.client("ec2", region_name="us-east-1")
prices = ec2.describe_spot_price_history(InstanceTypes=["g5.xlarge"])

class Sizer:
    def __init__(self, session):
        self._eks = session.client(service_name="eks")

    def grow(self):
        self._eks.update_nodegroup_config(clusterName="c", nodegroupName="g")
        for page in self._eks.get_paginator("list_nodegroups").paginate(clusterName="c"):
            pass

sts = botocore.session.get_session().create_client("sts")
url = sts.generate_presigned_url("get_caller_identity", Params={})
"""
    assert calls_in_source(source) == {
        "ec2:DescribeSpotPriceHistory",
        "eks:UpdateNodegroupConfig",
        "eks:ListNodegroups",
        "sts:GetCallerIdentity",
    }


@pytest.mark.parametrize(
    "source, reason",
    [
        pytest.param("c = boto3.client(name)\n", "not a string literal", id="computed-service"),
        pytest.param('c = boto3.client("iam")\nc.get_role()\n', "no IAM prefix", id="new-service"),
        pytest.param(
            'c = boto3.client("ec2")\nc.get_paginator(op)\n', "literal operation", id="paginator"
        ),
    ],
)
def test_the_scan_refuses_what_it_cannot_read(source: str, reason: str) -> None:
    with pytest.raises(UnreadableCall, match=reason):
        calls_in_source(source)


def test_the_controller_calls_aws_only_for_prices_and_the_bill() -> None:
    """Market prices and reconcile are the controller's only AWS calls, each with a reason."""
    from components.policies import CONTROLLER_AWS_CALLS

    called = needing_permission(calls_in_package(REPOSITORY / "spillover"))
    assert called == {
        "ec2:DescribeSpotPriceHistory",
        "pricing:GetProducts",
        "ce:GetCostAndUsage",
    }
    assert set(CONTROLLER_AWS_CALLS) == called
    assert all(len(reason) > 20 for reason in CONTROLLER_AWS_CALLS.values())


def test_the_controller_policy_allows_each_call_on_every_resource(example: Deployment) -> None:
    """None of its actions has a resource type in IAM: "*" is the only Resource they take."""
    (policy,) = [
        r for r in example.of_type("aws:iam/rolePolicy:RolePolicy") if r.name == CONTROLLER_POLICY
    ]
    statements = json.loads(policy.inputs["policy"])["Statement"]
    assert {s["Resource"] for s in statements} == {"*"}
    assert all(s["Sid"].startswith("Controller") and len(s["Action"]) == 1 for s in statements)


def test_reconcile_reads_the_tag_the_program_puts_on() -> None:
    from components.tagging import POOL
    from spillover.controller.reconcile import POOL_TAG

    assert POOL_TAG == POOL
