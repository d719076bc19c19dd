"""Who may reach the burst cluster's API, and in what order EKS can create what grants it."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.infra.conftest import (
    DEPLOYER_ROLE,
    Deployment,
    deploy,
    plain,
    read_settings,
    stack_config,
)

CLUSTER = "aws:eks/cluster:Cluster"
ACCESS_ENTRY = "aws:eks/accessEntry:AccessEntry"
ASSOCIATION = "aws:eks/accessPolicyAssociation:AccessPolicyAssociation"
CLUSTER_ADMIN = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"


def cluster(deployment: Deployment) -> dict:
    (found,) = deployment.of_type(CLUSTER)
    return plain(found.inputs)


def cluster_urn(deployment: Deployment) -> str:
    (found,) = deployment.of_type(CLUSTER)
    return found.urn


def test_every_access_entry_waits_for_the_cluster(example: Deployment) -> None:
    """An entry whose cluster name is a plain string is created before EKS exists (404)."""
    entries = example.of_type(ACCESS_ENTRY) + example.of_type(ASSOCIATION)
    assert any(e.name == "identity-controller-access" for e in entries)
    for entry in entries:
        waits_for = entry.property_dependencies.get("clusterName", set())
        assert cluster_urn(example) in waits_for, (
            f"{entry.name}'s clusterName does not come from the EKS cluster resource"
        )


def access_entries(deployment: Deployment) -> list[str]:
    """Principals with an access entry: the declared ones, and EKS's own for its creator."""
    principals = [plain(e.inputs)["principalArn"] for e in deployment.of_type(ACCESS_ENTRY)]
    if cluster(deployment)["accessConfig"]["bootstrapClusterCreatorAdminPermissions"]:
        principals.append(DEPLOYER_ROLE)  # EKS makes this entry itself, out of Pulumi's sight.
    return principals


@pytest.mark.parametrize(
    "admins",
    [
        pytest.param([], id="no-extra-admins"),
        pytest.param([DEPLOYER_ROLE], id="deployer-listed-too"),
        pytest.param(
            [DEPLOYER_ROLE, "arn:aws:iam::123456789012:role/platform-admins"], id="deployer-and-one"
        ),
    ],
)
def test_each_principal_gets_one_access_entry(admins: list[str]) -> None:
    """EKS refuses a second entry for a principal (409 ResourceInUseException)."""
    deployment = deploy(stack_config(burstAdminArns=admins))
    twice = [arn for arn, count in Counter(access_entries(deployment)).items() if count > 1]
    assert not twice, f"two access entries for {twice}"
    assert set(admins) <= set(access_entries(deployment))


def test_the_deploying_sso_role_is_cluster_admin_by_its_iam_arn_with_path(
    example: Deployment,
) -> None:
    """Not the sts assumed-role ARN of the session: EKS matches the role, path included."""
    admins = {
        plain(a.inputs)["principalArn"]
        for a in example.of_type(ASSOCIATION)
        if plain(a.inputs)["policyArn"] == CLUSTER_ADMIN
    }
    assert DEPLOYER_ROLE in admins, admins
    assert "/aws-reserved/sso.amazonaws.com/" in DEPLOYER_ROLE
    assert not any(":assumed-role/" in arn for arn in access_entries(example))


def admin_association(deployment: Deployment, principal_arn: str) -> str:
    (found,) = [
        a.name
        for a in deployment.of_type(ASSOCIATION)
        if plain(a.inputs)["principalArn"] == principal_arn
    ]
    return found


def test_the_burst_provider_waits_for_the_deployers_admin_access(example: Deployment) -> None:
    options = example.options[("pulumi:providers:kubernetes", "burst-k8s")]
    waits_for = {getattr(d, "_name", None) for d in options.depends_on or []}
    assert admin_association(example, DEPLOYER_ROLE) in waits_for, waits_for


def test_a_principal_keeps_its_entry_whoever_deploys_and_in_any_order() -> None:
    """Another name for the same principal would be a replacement, created before the old
    entry is deleted: a 409 in the middle of `pulumi up`."""
    other = "arn:aws:iam::123456789012:role/platform-admins"
    third = "arn:aws:iam::123456789012:role/on-call"
    runs = [
        deploy(stack_config(burstAdminArns=[other, third])),
        deploy(stack_config(burstAdminArns=[third, DEPLOYER_ROLE, other])),
    ]
    for principal in (DEPLOYER_ROLE, other, third):
        names = {admin_association(run, principal) for run in runs}
        assert len(names) == 1, f"{principal} changes resource between runs: {names}"


def test_the_eks_api_is_private_only_by_default() -> None:
    vpc = cluster(deploy(stack_config(burstApiPublicCidrs=[])))["vpcConfig"]
    assert vpc["endpointPrivateAccess"] is True
    assert vpc["endpointPublicAccess"] is False, "a public EKS API by default"
    assert "0.0.0.0/0" not in (vpc.get("publicAccessCidrs") or [])


def test_a_public_eks_api_admits_only_the_configured_ranges(example: Deployment) -> None:
    vpc = cluster(example)["vpcConfig"]
    assert vpc["endpointPublicAccess"] is True
    assert vpc["publicAccessCidrs"] == stack_config()["burstApiPublicCidrs"]
    assert "0.0.0.0/0" not in vpc["publicAccessCidrs"]


@pytest.mark.parametrize(
    "cidrs, named",
    [
        pytest.param(["203.0.113.0/24", "203.0.113.300/32"], "'203.0.113.300/32'", id="bad-ip"),
        pytest.param(["10.0.0.1/8"], "'10.0.0.1/8'", id="host-bits"),
        pytest.param(["2001:db8::/32"], "'2001:db8::/32'", id="ipv6"),
        pytest.param(["0.0.0.0/0"], "whole internet", id="everyone"),
    ],
)
def test_a_bad_public_cidr_is_named(cidrs: list[str], named: str) -> None:
    with pytest.raises(Exception, match="burstApiPublicCidrs") as raised:
        read_settings(stack_config(burstApiPublicCidrs=cidrs))
    assert named in str(raised.value)


def test_the_cluster_stays_in_standard_support(example: Deployment) -> None:
    config = cluster(example)
    assert config["upgradePolicy"] == {"supportType": "STANDARD"}
    major, minor = (int(part) for part in config["version"].split("."))
    # EKS standard support on 2 December 2026: 1.35 (to 27 March 2027) and newer.
    assert (major, minor) >= (1, 35), config["version"]
