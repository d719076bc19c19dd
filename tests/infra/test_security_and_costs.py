"""No keys anywhere, least privilege, explicit providers, and cost tags on every AWS resource."""

from __future__ import annotations

import importlib
import inspect
import json
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest
import yaml

from components.tagging import COST_TAG_KEYS
from tests.infra.conftest import Deployment, Resource, plain, stack_config

STATIC_KEY_NAME = re.compile(
    r"(access_?key(_?id)?|secret_?(access_?)?key|session_?token|aws_?secret)", re.IGNORECASE
)
STATIC_KEY_VALUE = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")


def strings_and_keys(value: Any, path: str = "") -> Iterator[tuple[str, str, str]]:
    """(path, key, string) for every string in a structure, including JSON/YAML inside strings."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield path, str(key), ""
            yield from strings_and_keys(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from strings_and_keys(item, f"{path}[{index}]")
    elif isinstance(value, str):
        yield path, "", value
        if value.lstrip()[:1] in ("{", "[") or "\n" in value:
            try:
                nested = yaml.safe_load(value)  # JSON is YAML: kubeconfigs, policies, documents
            except yaml.YAMLError:
                return
            if isinstance(nested, (dict, list)):
                yield from strings_and_keys(nested, f"{path}<parsed>")


def static_credentials(resource: Resource) -> list[str]:
    found = []
    for path, key, text in strings_and_keys(plain(resource.inputs)):
        if key and STATIC_KEY_NAME.search(key):
            found.append(f"{resource.name}{path}.{key}")
        if text and STATIC_KEY_VALUE.search(text):
            found.append(f"{resource.name}{path}: {text[:30]}...")
        if text in {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}:
            found.append(f"{resource.name}{path}: {text}")
    return found


def test_the_key_scanner_finds_keys_where_they_hide() -> None:
    planted = Resource(
        "kubernetes:helm.sh/v3:Release",
        "planted",
        {
            "values": {"awsAccessKeyID": "x"},
            "kubeconfig": json.dumps({"env": [{"name": "AWS_SECRET_ACCESS_KEY", "value": "y"}]}),
            "note": "AKIAIOSFODNN7EXAMPLE",
        },
        None,
    )
    assert len(static_credentials(planted)) == 3, static_credentials(planted)


def test_no_static_aws_keys_in_any_input_value_or_provider(example: Deployment) -> None:
    found = [hit for resource in example.resources for hit in static_credentials(resource)]
    assert not found, f"static AWS credentials (use IRSA): {found}"
    aws_provider = plain(example.providers["aws"].inputs)
    assert not {"accessKey", "secretKey", "token", "profile"} & set(aws_provider), aws_provider


def test_every_kubernetes_resource_names_its_cluster(example: Deployment) -> None:
    for resource in example.resources:
        if resource.typ.startswith("kubernetes:"):
            assert resource.provider in {"private-k8s", "burst-k8s"}, (
                f"{resource.name} ({resource.typ}) would use the ambient kubeconfig"
            )
    for name in ("private-k8s", "burst-k8s"):
        assert example.providers[name].inputs.get("kubeconfig"), f"{name} has no kubeconfig"


def test_the_private_kubeconfig_stays_secret(example: Deployment) -> None:
    from tests.infra.conftest import is_secret_input

    assert is_secret_input(example.providers["private-k8s"].inputs["kubeconfig"])
    assert "burstKubeconfig" in example.secret_outputs


def test_every_aws_resource_names_its_provider(example: Deployment) -> None:
    for resource in example.resources:
        if resource.typ.startswith("aws:"):
            assert resource.provider == "aws", f"{resource.name} would use a default AWS provider"


def test_everything_but_the_shared_provider_belongs_to_a_component(example: Deployment) -> None:
    for resource in example.resources:
        if resource.typ.startswith("spillover:") or resource.name == "aws":
            continue
        assert any(p.startswith("spillover:") for p in resource.parents), (
            f"{resource.name} is not a child of a spillover component"
        )


def test_component_type_tokens_name_their_module(example: Deployment) -> None:
    components = [r for r in example.resources if r.typ.startswith("spillover:")]
    assert {r.typ.split(":")[2] for r in components} >= {"PrivateSite", "BurstPool", "ModelStore"}
    for component in components:
        _, module, kind = component.typ.split(":")
        imported = importlib.import_module(f"components.{module}")
        assert hasattr(imported, kind), f"{component.typ}: no {kind} in components/{module}.py"


@cache
def takes_tags(typ: str) -> bool:
    """Whether this pulumi_aws resource type has a `tags` input (aws:ec2/vpc:Vpc -> ec2.Vpc)."""
    _, module_path, kind = typ.split(":")
    module = importlib.import_module(f"pulumi_aws.{module_path.split('/')[0]}")
    resource_class = getattr(module, kind)
    return "tags" in inspect.signature(resource_class._internal_init).parameters


def effective_tags(deployment: Deployment, resource: Resource) -> dict[str, str]:
    """Tags AWS would store: the provider's default_tags, overridden by the resource's own."""
    provider = plain(deployment.providers[resource.provider or ""].inputs)
    defaults = json.loads(provider.get("defaultTags", "{}")).get("tags", {})
    return {**defaults, **plain(resource.inputs.get("tags") or {})}


def expected_pool(resource: Resource) -> str | None:
    if "spillover:burst_pool:BurstPool" in resource.parents:
        return "burst"
    if "spillover:model_store:ModelStore" in resource.parents:
        return "shared"
    return None


def test_every_taggable_aws_resource_carries_the_cost_tags(example: Deployment) -> None:
    tagged = 0
    for resource in example.resources:
        if not resource.typ.startswith("aws:") or not takes_tags(resource.typ):
            continue
        tags = effective_tags(example, resource)
        missing = [key for key in COST_TAG_KEYS if not tags.get(key)]
        assert not missing, f"{resource.name} ({resource.typ}) lacks cost tags {missing}"
        assert tags["spillover:pool"] in {"private", "burst", "shared"}, resource.name
        assert tags["spillover:stack"] == "test", resource.name
        if expected_pool(resource):
            assert tags["spillover:pool"] == expected_pool(resource), (
                f"{resource.name} is billed to pool {tags['spillover:pool']}"
            )
        tagged += 1
    assert tagged > 30, "the check saw too few resources to mean anything"


def test_the_tag_check_knows_untaggable_types() -> None:
    assert takes_tags("aws:ec2/vpc:Vpc")
    assert not takes_tags("aws:iam/rolePolicy:RolePolicy")


def test_nlbs_made_by_kubernetes_carry_the_cost_tags(example: Deployment) -> None:
    """Kubernetes creates the NLBs, so provider default tags never reach them; annotations do."""
    for pool in ("triton-recommender-spot", "triton-recommender-ondemand"):
        (release,) = [
            r for r in example.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["name"] == pool
        ]
        annotations = plain(release.inputs)["values"]["service"]["annotations"]
        tags = dict(
            pair.split("=", 1)
            for pair in annotations[
                "service.beta.kubernetes.io/aws-load-balancer-additional-resource-tags"
            ].split(",")
        )
        assert {key: tags.get(key) for key in COST_TAG_KEYS if key != "spillover:component"} == {
            "spillover:project": "spillover",
            "spillover:stack": "test",
            "spillover:pool": "burst",
        }, pool


def policy_statements(resource: Resource) -> list[dict[str, Any]]:
    document = json.loads(resource.inputs["policy"])
    return (
        [document["Statement"]]
        if isinstance(document["Statement"], dict)
        else document["Statement"]
    )


def actions(statement: dict[str, Any]) -> list[str]:
    action = statement.get("Action", [])
    return [action] if isinstance(action, str) else action


def test_no_iam_policy_allows_wildcard_actions(example: Deployment) -> None:
    for policy in example.of_type("aws:iam/rolePolicy:RolePolicy"):
        for statement in policy_statements(policy):
            if statement["Effect"] == "Allow":
                wild = [a for a in actions(statement) if "*" in a]
                assert not wild, f"{policy.name} allows wildcard actions {wild}"


def test_only_the_controllers_service_account_assumes_its_role(example: Deployment) -> None:
    trust = json.loads(example.named("identity-controller-role").inputs["assumeRolePolicy"])
    (statement,) = trust["Statement"]
    issuer_host = stack_config()["privateOidcIssuerUrl"].removeprefix("https://")
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"]["Federated"].endswith(f"oidc-provider/{issuer_host}")
    assert statement["Condition"]["StringEquals"] == {
        f"{issuer_host}:sub": "system:serviceaccount:spillover:spillover-controller",
        f"{issuer_host}:aud": "sts.amazonaws.com",
    }


def test_the_controllers_burst_rbac_scales_triton_and_reads_no_secrets(example: Deployment) -> None:
    (role,) = example.of_type("kubernetes:rbac.authorization.k8s.io/v1:Role")
    assert role.provider == "burst-k8s"
    rules = plain(role.inputs["rules"])
    for rule in rules:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], f"{role.name}: wildcard {field}"
        assert "secrets" not in rule["resources"], f"{role.name} can read Secrets"
    assert not example.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole")
    assert role.inputs["metadata"]["namespace"] == "spillover", "only in Triton's namespace"
    (proxy,) = [r for r in rules if "pods/proxy" in r["resources"]]
    assert (proxy["resources"], proxy["verbs"]) == (["pods/proxy"], ["get"]), (
        "the per-pod metrics path reads, nothing more"
    )
    (scale,) = [r for r in rules if "deployments/scale" in r["resources"]]
    assert sorted(scale["resourceNames"]) == [
        "triton-recommender-ondemand",
        "triton-recommender-spot",
    ]
    (binding,) = example.of_type("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding")
    entry = example.named("identity-controller-access")
    subjects = plain(binding.inputs["subjects"])
    assert [s["name"] for s in subjects] == entry.inputs["kubernetesGroups"]
    associations = example.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    assert all(a.inputs["principalArn"] != entry.inputs["principalArn"] for a in associations), (
        "the controller gets namespaced RBAC, not an EKS access policy"
    )


@pytest.mark.parametrize("source", ["s3", "pvc"])
def test_private_triton_gets_a_bucket_role_only_when_it_reads_s3(source: str) -> None:
    from tests.infra.conftest import deploy

    deployment = deploy(stack_config(privateModelSource=source, privateModelPvc="models"))
    roles = [r.name for r in deployment.of_type("aws:iam/role:Role")]
    (private,) = [
        r for r in deployment.of_type("kubernetes:helm.sh/v3:Release") if r.name == "private-triton"
    ]
    values = plain(private.inputs)["values"]
    assert values["modelRepository"]["source"] == source
    if source == "s3":
        assert "identity-private-triton-role" in roles
        assert values["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(
            "identity-private-triton-role"
        )
    else:
        assert "identity-private-triton-role" not in roles
        assert values["modelRepository"]["pvc"] == {"claimName": "models"}
        assert values["serviceAccount"]["annotations"] == {}
