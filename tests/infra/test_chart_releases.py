"""The values the program gives the repository's charts pass their schemas and render as meant.

Each Helm release of a local chart is rendered offline with Helm's own engine (helm-python-sdk),
with the very values, release name and namespace the program declared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra.conftest import REPOSITORY, Deployment, Resource, plain, stack_config

helm = pytest.importorskip("helm_python", reason="helm-python-sdk renders the charts")

RELEASE = "kubernetes:helm.sh/v3:Release"


def local_releases(deployment: Deployment) -> list[Resource]:
    return [r for r in deployment.of_type(RELEASE) if str(r.inputs["chart"]).startswith("/")]


def render(release: Resource) -> list[dict[str, Any]]:
    inputs = plain(release.inputs)
    chart = helm.Chart.load(Path(inputs["chart"]))
    try:
        templates = chart.render(
            inputs.get("values", {}), name=inputs["name"], namespace=inputs["namespace"]
        )
    finally:
        chart.close()
    return [
        document
        for path, text in sorted(templates.items())
        if path.endswith(".yaml")
        for document in yaml.safe_load_all(text)
        if document
    ]


def one(manifests: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    names = [m["metadata"]["name"] for m in manifests if m["kind"] == kind]
    assert len(found) == 1, f"expected one {kind} {name}, found {names}"
    return found[0]


@pytest.fixture(scope="module")
def rendered(example: Deployment) -> dict[str, list[dict[str, Any]]]:
    """Release name -> its rendered manifests, for every release of a chart in charts/."""
    return {release.inputs["name"]: render(release) for release in local_releases(example)}


def test_every_local_chart_is_a_chart_of_this_repository(example: Deployment) -> None:
    charts = {Path(r.inputs["chart"]) for r in local_releases(example)}
    assert charts == {
        REPOSITORY / "charts" / name
        for name in ("triton-recommender", "spillover-gateway", "spillover-controller")
    }


def test_every_release_renders_with_the_programs_values(rendered: dict[str, Any]) -> None:
    """A schema violation or a chart `fail` would have raised while rendering."""
    assert set(rendered) == {
        "triton-recommender",
        "triton-recommender-spot",
        "triton-recommender-ondemand",
        "spillover-gateway",
        "spillover-controller",
    }


def test_each_pool_gets_the_deployment_its_controller_config_names(
    rendered: dict[str, Any],
) -> None:
    for pool in stack_config()["controllerConfig"]["pools"]:
        target = pool["kubernetes"]
        deployment = one(rendered[target["deployment"]], "Deployment", target["deployment"])
        assert deployment["metadata"]["namespace"] == target["namespace"]
        assert "replicas" not in deployment["spec"], (
            f"{target['deployment']}: pulumi up would reset what the controller scaled"
        )


def test_burst_triton_services_are_nlbs_and_pods_land_on_their_capacity(
    rendered: dict[str, Any],
) -> None:
    for name, capacity in (
        ("triton-recommender-spot", "spot"),
        ("triton-recommender-ondemand", "on-demand"),
    ):
        service = one(rendered[name], "Service", name)
        assert service["spec"]["type"] == "LoadBalancer"
        assert (
            service["metadata"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-type"]
            == "nlb"
        )
        pod = one(rendered[name], "Deployment", name)["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"spillover.io/capacity": capacity}
        assert {
            "key": "nvidia.com/gpu",
            "operator": "Equal",
            "value": "present",
            "effect": "NoSchedule",
        } in pod["tolerations"]
        container = pod["containers"][0]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        account = one(rendered[name], "ServiceAccount", pod["serviceAccountName"])
        assert "eks.amazonaws.com/role-arn" in account["metadata"]["annotations"]


def test_the_gateway_finds_the_private_pool_and_the_controller_finds_the_gateway(
    rendered: dict[str, Any], example: Deployment
) -> None:
    (gateway,) = [r for r in example.of_type(RELEASE) if r.inputs["name"] == "spillover-gateway"]
    private = plain(gateway.inputs)["values"]["pools"]["private"]
    one(rendered["triton-recommender"], "Service", private["service"])  # the headless Service
    one(rendered["spillover-gateway"], "Service", "spillover-gateway")  # read for the export
    runtime_host = stack_config()["controllerConfig"]["gateway"]["runtime_api"].split(".")[0]
    one(rendered["spillover-gateway"], "Service", runtime_host)


def test_the_controller_mounts_the_burst_kubeconfig_the_program_writes(
    rendered: dict[str, Any], example: Deployment
) -> None:
    (secret,) = example.of_type("kubernetes:core/v1:Secret")
    name = secret.inputs["metadata"]["name"]
    (file,) = plain(secret.inputs["stringData"])
    controller = one(rendered["spillover-controller"], "Deployment", "spillover-controller")
    volumes = controller["spec"]["template"]["spec"]["volumes"]
    assert {"secretName": name, "defaultMode": 0o440} == next(
        v["secret"] for v in volumes if "secret" in v
    )
    burst_paths = {
        p["kubernetes"]["kubeconfig"]
        for p in stack_config()["controllerConfig"]["pools"]
        if p["role"] == "burst"
    }
    assert burst_paths == {f"/etc/spillover/kubeconfigs/{file}"}


def test_the_controllers_private_rbac_reads_no_secrets(rendered: dict[str, Any]) -> None:
    for role in [m for m in rendered["spillover-controller"] if m["kind"] == "Role"]:
        for rule in role["rules"]:
            assert "secrets" not in rule["resources"] and "*" not in rule["verbs"], role
