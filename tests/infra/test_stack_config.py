"""Pulumi.yaml declares every setting once; bad stack config fails early, naming the key."""

from __future__ import annotations

import re
from typing import Any

import pytest

from settings import SECRET_CONFIG_KEYS, StackConfigError
from tests.infra.conftest import (
    EXAMPLE_STACK,
    PROJECT,
    REPOSITORY,
    deploy,
    read_settings,
    stack_config,
)
from tests.infra.machines import machine_stack

CONFIG = PROJECT["config"]
SETTINGS_SOURCE = "\n".join(
    (REPOSITORY / "infra" / module).read_text() for module in ("settings.py", "cluster_settings.py")
)
"""The modules that read stack config keys."""


def test_project_runs_infra_with_python_in_a_virtualenv() -> None:
    assert PROJECT["name"] == "spillover"
    assert PROJECT["main"].rstrip("/") == "infra"
    assert PROJECT["runtime"]["name"] == "python"
    assert PROJECT["runtime"]["options"]["virtualenv"]


def test_pulumi_installs_this_repository_with_its_infra_extra() -> None:
    """With `main: infra/`, Pulumi runs `pip install -r requirements.txt` inside infra/."""
    requirements = (REPOSITORY / "infra" / "requirements.txt").read_text().split()
    assert "-e" in requirements and "..[infra]" in requirements, requirements


@pytest.mark.parametrize("key", sorted(CONFIG))
def test_every_key_is_typed_described_and_defaulted_or_required(key: str) -> None:
    spec = CONFIG[key]
    assert spec.get("type") in {"string", "integer", "boolean", "array", "object"}, key
    assert len(spec.get("description", "")) > 20, f"{key} needs a description"
    if spec["type"] == "array":
        assert spec.get("items", {}).get("type"), f"{key}: arrays declare their items' type"
    if "default" in spec:
        assert _fits(spec["type"], spec["default"]), f"{key}: default is not a {spec['type']}"
    else:
        # A key without default must be set per stack; the program says so by name.
        assert key in {
            "privateOidcIssuerUrl",
            "controllerImage",
            "burstAllowedCidrs",
        }, key


def _fits(kind: str, value: Any) -> bool:
    python = {"string": str, "integer": int, "boolean": bool, "array": list, "object": dict}
    return isinstance(value, python[kind]) and not (kind == "integer" and isinstance(value, bool))


@pytest.mark.parametrize("key", SECRET_CONFIG_KEYS)
def test_secret_keys_are_declared_and_say_how_to_set_them(key: str) -> None:
    """Not `secret: true` (the CLI refuses it with a default, pulumi#21865): the program checks."""
    assert key in CONFIG and CONFIG[key]["default"] == ""
    assert f"pulumi config set --secret {key}" in CONFIG[key]["description"]


@pytest.mark.parametrize(
    ("key", "values"),
    [
        ("privateKubeconfig", stack_config()),
        ("privateSshKey", machine_stack()),
    ],
)
def test_a_secret_key_set_in_plain_text_is_refused(key: str, values: dict[str, Any]) -> None:
    with pytest.raises(StackConfigError, match=f"spillover:{key}: is stored in plain text"):
        read_settings(values, plaintext=(key,))


@pytest.mark.parametrize("key", sorted(CONFIG))
def test_the_program_reads_every_declared_key(key: str) -> None:
    assert f'"{key}"' in SETTINGS_SOURCE, f"Pulumi.yaml declares {key} but nothing reads it"


def test_the_program_reads_no_undeclared_key() -> None:
    read = set(re.findall(r'read\.\w+\(\s*"(\w+)"', SETTINGS_SOURCE))
    assert read <= set(CONFIG), f"read but not declared in Pulumi.yaml: {read - set(CONFIG)}"


def test_the_example_stack_sets_only_declared_keys_with_their_types() -> None:
    for full_key, value in EXAMPLE_STACK["config"].items():
        namespace, _, key = full_key.partition(":")
        assert namespace == "spillover" and key in CONFIG, f"undeclared key {full_key}"
        assert _fits(CONFIG[key]["type"], value), f"{full_key} is not a {CONFIG[key]['type']}"
        assert not CONFIG[key].get("secret"), f"{full_key} is secret: set it encrypted, per stack"


def test_defaults_alone_are_a_valid_stack_once_required_keys_are_set() -> None:
    defaults = {key: spec["default"] for key, spec in CONFIG.items() if "default" in spec}
    settings = read_settings(
        {
            **defaults,
            "privateKubeconfig": "apiVersion: v1\nkind: Config\n",
            "privateOidcIssuerUrl": "https://oidc.gpu.example.com",
            "controllerImage": "registry.example.com/spillover:0.1.0",
            "burstAllowedCidrs": ["192.168.0.0/16"],
        }
    )
    assert settings.burst.availability_zones == ()  # the region's first two, found at deploy
    assert [t.capacity_type for t in settings.workload.burst_tritons] == ["spot", "on-demand"]


BAD_CONFIG = [
    pytest.param(
        {"privateKubeconfig": None}, "privateKubeconfig", "not set", id="missing-kubeconfig"
    ),
    pytest.param(
        {"privateKubeconfig": "  "}, "privateKubeconfig", "not set", id="blank-kubeconfig"
    ),
    pytest.param(
        {"gpuInstanceTypes": []}, "gpuInstanceTypes", "at least 1", id="no-instance-types"
    ),
    pytest.param(
        {"gpuInstanceTypes": ["g5.xlarge", "g5.xlarge"]},
        "gpuInstanceTypes",
        "twice",
        id="instance-type-twice",
    ),
    pytest.param({"spotMaxSize": -1}, "spotMaxSize", "at least 0", id="negative-spot-max"),
    pytest.param({"onDemandMaxSize": -2}, "onDemandMaxSize", "at least 0", id="negative-od-max"),
    pytest.param({"spotMaxSize": "four"}, "spotMaxSize", "whole number", id="size-not-a-number"),
    pytest.param({"systemMinSize": 0}, "systemMinSize", "at least 1", id="no-system-nodes"),
    pytest.param(
        {"systemMinSize": 3, "systemMaxSize": 2}, "systemMaxSize", "below", id="system-max<min"
    ),
    pytest.param({"spotMaxSize": 0}, "spotMaxSize", "burst_spot", id="spot-pool-without-nodes"),
    pytest.param({"gpuNodeDiskGib": 8}, "gpuNodeDiskGib", "at least 20", id="tiny-gpu-disk"),
    pytest.param({"vpcCidr": "10.0.0.0/8"}, "vpcCidr", "/16 to /20", id="vpc-too-large"),
    pytest.param({"vpcCidr": "10.42.1.0/16"}, "vpcCidr", "10.42.0.0/16", id="vpc-host-bits"),
    pytest.param({"vpcCidr": "ten-dot-42"}, "vpcCidr", "not an IPv4", id="vpc-not-a-cidr"),
    pytest.param(
        {"availabilityZones": ["eu-west-1a", "eu-west-1b"]},
        "availabilityZones",
        "not in awsRegion",
        id="zones-outside-region",
    ),
    pytest.param({"availabilityZones": ["us-east-1a"]}, "availabilityZones", "two", id="one-zone"),
    pytest.param({"eksVersion": "1.33.2"}, "eksVersion", "major.minor", id="eks-patch-version"),
    pytest.param(
        {"burstLoadBalancerScheme": "internet-facing", "burstAllowedCidrs": []},
        "burstAllowedCidrs",
        "internet-facing NLB would admit every address",
        id="open-internet-facing-nlb",
    ),
    # Kubernetes reads no source ranges as 0.0.0.0/0, internal or not.
    pytest.param(
        {"burstAllowedCidrs": []},
        "burstAllowedCidrs",
        "internal NLB would admit every address",
        id="open-internal-nlb",
    ),
    pytest.param({"burstAllowedCidrs": None}, "burstAllowedCidrs", "not set", id="no-nlb-ranges"),
    pytest.param(
        {"burstAllowedCidrs": ["192.168.0.0/16", "0.0.0.0/0"]},
        "burstAllowedCidrs",
        "0.0.0.0/0 admits every address",
        id="nlb-open-to-all-ipv4",
    ),
    pytest.param(
        {"burstAllowedCidrs": ["::/0"]},
        "burstAllowedCidrs",
        "::/0 admits every address",
        id="nlb-open-to-all-ipv6",
    ),
    pytest.param({"burstAllowedCidrs": ["everyone"]}, "burstAllowedCidrs", "CIDR", id="bad-cidr"),
    pytest.param(
        {"burstLoadBalancerScheme": "public"}, "burstLoadBalancerScheme", "one of", id="bad-scheme"
    ),
    pytest.param({"burstAdminArns": ["admin"]}, "burstAdminArns", "arn:", id="admin-not-an-arn"),
    pytest.param(
        {"gatewayServiceType": "NodePort"}, "gatewayServiceType", "one of", id="bad-gateway-type"
    ),
    pytest.param(
        {"privateModelSource": "nfs"}, "privateModelSource", "one of", id="bad-model-source"
    ),
    pytest.param(
        {"privateModelSource": "pvc", "privateModelPvc": ""},
        "privateModelPvc",
        "empty",
        id="pvc-without-claim",
    ),
    pytest.param(
        {"privateOidcIssuerUrl": "http://oidc.gpu.example.com"},
        "privateOidcIssuerUrl",
        "https://",
        id="issuer-not-https",
    ),
    pytest.param({"privateOidcIssuerUrl": None}, "privateOidcIssuerUrl", "not set", id="no-issuer"),
    pytest.param({"controllerImage": None}, "controllerImage", "not set", id="no-controller-image"),
    pytest.param({"gpusPerReplica": 0}, "gpusPerReplica", "at least 1", id="zero-gpus"),
    pytest.param(
        {"modelStorePrefix": "/models/"}, "modelStorePrefix", "prefix", id="slashed-prefix"
    ),
    pytest.param(
        {"privateInstallDevicePlugin": "yes"},
        "privateInstallDevicePlugin",
        "true or false",
        id="flag-not-bool",
    ),
    pytest.param(
        {"controllerConfig": "pools: []"}, "controllerConfig", "must be a", id="config-not-object"
    ),
]


@pytest.mark.parametrize(("overrides", "key", "reason"), BAD_CONFIG)
def test_bad_stack_config_names_the_key(overrides: dict[str, Any], key: str, reason: str) -> None:
    with pytest.raises(StackConfigError) as raised:
        read_settings(stack_config(**overrides))
    line = _line_naming(str(raised.value), f"spillover:{key}")
    assert reason in line, f"the error for {key} should say {reason!r}: {line!r}"


def _line_naming(message: str, key: str) -> str:
    lines = [line for line in message.splitlines() if key in line]
    assert lines, f"no line of the error names {key}:\n{message}"
    return lines[0]


def _controller_config(**changes: Any) -> dict[str, Any]:
    """The example's controller document with changes applied to pools[0] (the private pool)."""
    document = stack_config()["controllerConfig"]
    document = {**document, "pools": [dict(pool) for pool in document["pools"]]}
    for key, value in changes.items():
        document["pools"][0][key] = value
    return document


BAD_CONTROLLER_CONFIG = [
    pytest.param(
        _controller_config(max_replicas=1, min_replicas=2), "pools[0]", "below", id="max<min"
    ),
    pytest.param(_controller_config(capacity_type="spot"), "pools[0]", "role", id="owned-as-spot"),
    pytest.param(_controller_config(surprise=1), "pools[0].surprise", "unknown key", id="typo"),
    pytest.param(
        _controller_config(kubernetes={"namespace": "other", "deployment": "triton-recommender"}),
        "controllerConfig.pools[0].kubernetes.namespace",
        "'spillover'",
        id="pool-in-other-namespace",
    ),
    pytest.param(
        _controller_config(kubernetes={"namespace": "spillover", "deployment": "Triton_1"}),
        "controllerConfig.pools[0].kubernetes.deployment",
        "release name",
        id="deployment-not-a-release-name",
    ),
    pytest.param(
        _controller_config(max_replicas=3),
        "controllerConfig.pools[0].max_replicas",
        "privateGpuReplicas",
        id="private-beyond-owned-gpus",
    ),
    pytest.param(
        _controller_config(driver="local", kubernetes=None),
        "controllerConfig.pools[0].driver",
        "kubernetes",
        id="local-driver-in-cluster",
    ),
]


@pytest.mark.parametrize(("document", "key", "reason"), BAD_CONTROLLER_CONFIG)
def test_bad_controller_config_names_the_key(
    document: dict[str, Any], key: str, reason: str
) -> None:
    """The controller's own schema (spillover.config) judges the document, with its key names."""
    document = {name: value for name, value in document.items()}
    document["pools"] = [{k: v for k, v in p.items() if v is not None} for p in document["pools"]]
    with pytest.raises(StackConfigError) as raised:
        read_settings(stack_config(controllerConfig=document))
    message = str(raised.value)
    assert "spillover:controllerConfig" in message, message
    assert reason in _line_naming(message, key), message


def test_burst_pools_must_read_the_mounted_kubeconfig() -> None:
    document = stack_config()["controllerConfig"]
    burst = dict(document["pools"][1])
    burst["kubernetes"] = {**burst["kubernetes"], "kubeconfig": "/root/.kube/config"}
    document = {**document, "pools": [document["pools"][0], burst, *document["pools"][2:]]}
    with pytest.raises(StackConfigError) as raised:
        read_settings(stack_config(controllerConfig=document))
    line = _line_naming(str(raised.value), "controllerConfig.pools[1].kubernetes.kubeconfig")
    assert "/etc/spillover/kubeconfigs" in line


@pytest.mark.parametrize("metrics", [None, {"via": "direct"}], ids=["default", "direct"])
def test_burst_pools_read_metrics_through_the_burst_api_server(
    metrics: dict[str, str] | None,
) -> None:
    document = stack_config()["controllerConfig"]
    burst = dict(document["pools"][1])
    target = {k: v for k, v in burst["kubernetes"].items() if k != "metrics"}
    burst["kubernetes"] = target if metrics is None else {**target, "metrics": metrics}
    document = {**document, "pools": [document["pools"][0], burst, *document["pools"][2:]]}
    with pytest.raises(StackConfigError) as raised:
        read_settings(stack_config(controllerConfig=document))
    line = _line_naming(str(raised.value), "controllerConfig.pools[1].kubernetes.metrics.via")
    assert "apiserver-proxy" in line


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(StackConfigError) as raised:
        read_settings(stack_config(privateKubeconfig=None, spotMaxSize=-1, gpuInstanceTypes=[]))
    message = str(raised.value)
    for key in ("privateKubeconfig", "spotMaxSize", "gpuInstanceTypes"):
        assert f"spillover:{key}" in message, message


def test_the_program_itself_fails_with_the_keys_name() -> None:
    with pytest.raises(StackConfigError, match="spillover:gpuInstanceTypes"):
        deploy(stack_config(gpuInstanceTypes=[]))


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("region", "us-west-2", "the burst pool is in 'us-east-1'"),
        ("instance_types", ["g5.xlarge"], "the GPU node groups launch"),
        ("zones", ["us-east-1a"], "the node groups are in"),
    ],
)
def test_market_prices_must_ask_about_this_stacks_node_groups(
    field: str, value: Any, reason: str
) -> None:
    document = stack_config()["controllerConfig"]
    burst = dict(document["pools"][1])
    market = {**burst["price"]["market"], field: value}
    if field == "region":
        market["zones"] = ["us-west-2a", "us-west-2b"]
    burst["price"] = {**burst["price"], "market": market}
    document = {**document, "pools": [document["pools"][0], burst, *document["pools"][2:]]}
    with pytest.raises(StackConfigError) as raised:
        read_settings(stack_config(controllerConfig=document))
    line = _line_naming(str(raised.value), f"controllerConfig.pools[1].price.market.{field}")
    assert reason in line
