"""What every chart promises: it renders with its defaults and each ci/ scenario, every manifest
is valid Kubernetes from the chart's kubeVersion floor to the newest release, and it follows the
community conventions people rely on when they read or install it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from tests.charts.rendering import (
    CHART_NAMES,
    NEWEST_KUBERNETES,
    chart_dir,
    ci_values_files,
    kube_version_floor,
    load_yaml,
    pod_spec,
    render,
    validate,
)

SCENARIOS = [
    pytest.param(name, path, id=f"{name}:{path.name if path else 'defaults'}")
    for name in CHART_NAMES
    for path in [None, *ci_values_files(name)]
]

STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of",
    "helm.sh/chart",
)
LEGACY_LABELS = ("app", "chart", "release", "heritage")
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


def _values(path: Path | None) -> dict[str, Any]:
    return (load_yaml(path) or {}) if path else {}


@pytest.mark.parametrize(("name", "values_file"), SCENARIOS)
def test_every_manifest_is_valid_kubernetes_from_the_floor_to_the_newest_release(
    charts: dict[str, helm.Chart], name: str, values_file: Path | None
) -> None:
    floor = kube_version_floor(name)
    rendered = render(charts[name], _values(values_file), kube_version=floor)
    assert rendered.manifests, "nothing rendered"
    for manifest in rendered.manifests:
        for version in (floor, NEWEST_KUBERNETES):
            validate(manifest, version)


@pytest.mark.parametrize(("name", "values_file"), SCENARIOS)
def test_helm_lint_is_clean(name: str, values_file: Path | None) -> None:
    report = helm.lint(
        chart_dir(name),
        _values(values_file),
        strict=True,
        kube_version=f"v{kube_version_floor(name)}",
    )
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems and not report["errors"], problems or report["errors"]


@pytest.mark.parametrize(("name", "values_file"), SCENARIOS)
def test_resources_carry_the_standard_labels_and_no_legacy_ones(
    charts: dict[str, helm.Chart], name: str, values_file: Path | None
) -> None:
    rendered = render(charts[name], _values(values_file), kube_version=kube_version_floor(name))
    for manifest in rendered.manifests:
        labels = manifest["metadata"].get("labels", {})
        where = f"{manifest['kind']} {manifest['metadata']['name']}"
        assert not [key for key in STANDARD_LABELS if key not in labels], where
        assert labels["app.kubernetes.io/part-of"] == "spillover", where
        # A ServiceMonitor also carries the labels its Prometheus selects (release: ...).
        if manifest["kind"] != "ServiceMonitor":
            assert not [key for key in LEGACY_LABELS if key in labels], where
        if manifest["kind"] in WORKLOAD_KINDS:
            pod_labels = manifest["spec"]["template"]["metadata"]["labels"]
            assert not [key for key in LEGACY_LABELS if key in pod_labels], where
            assert manifest["spec"]["selector"]["matchLabels"] == {
                "app.kubernetes.io/name": labels["app.kubernetes.io/name"],
                "app.kubernetes.io/instance": labels["app.kubernetes.io/instance"],
            }


@pytest.mark.parametrize(("name", "values_file"), SCENARIOS)
def test_pods_run_unprivileged_with_resources_set(
    charts: dict[str, helm.Chart], name: str, values_file: Path | None
) -> None:
    rendered = render(charts[name], _values(values_file), kube_version=kube_version_floor(name))
    workloads = [m for m in rendered.manifests if m["kind"] in WORKLOAD_KINDS]
    assert workloads
    for workload in workloads:
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] > 0
        for container in spec["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert container["resources"]["requests"]["cpu"]
            assert container["resources"]["limits"]["memory"]
            assert not container["image"].endswith((":latest", ":"))


@pytest.mark.parametrize("name", CHART_NAMES)
def test_each_template_file_holds_one_kind(charts: dict[str, helm.Chart], name: str) -> None:
    every_option = {
        "triton-recommender": {
            "autoscaling": {"enabled": True},
            "serviceMonitor": {"enabled": True},
        },
        "spillover-gateway": {"serviceMonitor": {"enabled": True}},
        "spillover-controller": {"serviceMonitor": {"enabled": True}},
    }[name]
    rendered = render(charts[name], every_option, kube_version=kube_version_floor(name))
    kinds_by_file: dict[str, set[str]] = {}
    for path, manifest in rendered.by_template():
        kinds_by_file.setdefault(path, set()).add(manifest["kind"])
    assert kinds_by_file
    assert {path: kinds for path, kinds in kinds_by_file.items() if len(kinds) > 1} == {}


@pytest.mark.parametrize("name", CHART_NAMES)
def test_chart_yaml_declares_api_v2_kube_version_and_semver(name: str) -> None:
    chart = load_yaml(chart_dir(name) / "Chart.yaml")
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == name
    assert re.fullmatch(r"\d+\.\d+\.\d+", chart["version"])
    assert chart["appVersion"]
    assert kube_version_floor(name) == "1.28.0"


@pytest.mark.parametrize("name", CHART_NAMES)
def test_ci_scenarios_exist(name: str) -> None:
    files = ci_values_files(name)
    assert len(files) >= 3, files
    assert chart_dir(name).joinpath("ci", "default-values.yaml") in files


@pytest.mark.parametrize("name", CHART_NAMES)
def test_values_yaml_starts_with_its_schema_line(name: str) -> None:
    first = (chart_dir(name) / "values.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=values.schema.json"


@pytest.mark.parametrize("name", CHART_NAMES)
def test_every_setting_has_a_comment_above_it(name: str) -> None:
    """Keys of objects the chart owns; inside Kubernetes structures the parent's comment covers."""
    text = (chart_dir(name) / "values.yaml").read_text()
    lines = text.splitlines()
    schema = load_yaml(chart_dir(name) / "values.schema.json")
    undocumented = [
        f"line {line + 1}: {key}"
        for key, line in _mapping_keys(yaml.compose(text), "")
        if _owned(schema, key.rsplit(".", 1)[0] if "." in key else "")
        if not lines[line - 1].lstrip().startswith("#")
    ]
    assert undocumented == []


@pytest.mark.parametrize("name", CHART_NAMES)
def test_owned_objects_in_the_schema_refuse_unknown_keys(name: str) -> None:
    schema = load_yaml(chart_dir(name) / "values.schema.json")
    open_objects = [
        path
        for path, node in _schema_nodes(schema, "")
        if node.get("type") == "object" and "properties" in node
        if "additionalProperties" not in node
    ]
    assert open_objects == []
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("name", CHART_NAMES)
def test_readme_documents_every_value(name: str) -> None:
    readme = (chart_dir(name) / "README.md").read_text()
    schema = load_yaml(chart_dir(name) / "values.schema.json")
    missing = [key for key in _owned_value_keys(schema, schema, "") if f"`{key}`" not in readme]
    assert missing == []


@pytest.mark.parametrize("name", CHART_NAMES)
def test_defaults_hold_no_placeholders(name: str) -> None:
    placeholder = re.compile(
        r"(?i)changeme|todo|fixme|example\.(com|org)|<[^>]+>|xxx|your-|^latest$"
    )
    values = load_yaml(chart_dir(name) / "values.yaml")
    assert [text for text in _strings(values) if placeholder.search(text)] == []


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [text for value in node.values() for text in _strings(value)]
    if isinstance(node, list):
        return [text for value in node for text in _strings(value)]
    return [node] if isinstance(node, str) else []


def _mapping_keys(node: yaml.Node, prefix: str) -> list[tuple[str, int]]:
    """Dotted keys of nested mappings with their line numbers; list items are data."""
    keys: list[tuple[str, int]] = []
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = f"{prefix}.{key.value}" if prefix else key.value
            keys.append((path, key.start_mark.line))
            keys += _mapping_keys(value, path)
    return keys


def _owned(schema: dict[str, Any], dotted: str) -> bool:
    """Whether the object at this values path refuses unknown keys (the chart's own settings)."""
    node = schema
    for part in [p for p in dotted.split(".") if p]:
        node = _resolve(schema, node).get("properties", {}).get(part, {})
    return _resolve(schema, node).get("additionalProperties") is False


def _resolve(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = root["definitions"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _schema_nodes(node: Any, path: str) -> list[tuple[str, dict[str, Any]]]:
    if isinstance(node, list):
        return [found for index, item in enumerate(node) for found in _schema_nodes(item, path)]
    if not isinstance(node, dict):
        return []
    found = [(path, node)]
    for key, value in node.items():
        found += _schema_nodes(value, f"{path}/{key}")
    return found


def _owned_value_keys(node: dict[str, Any], root: dict[str, Any], prefix: str) -> list[str]:
    """Dotted keys of the settings the chart owns, down to their leaves; `config` is one entry
    (its keys are spillover.yaml's, documented in spillover/config.py)."""
    node = _resolve(root, node)
    if node.get("additionalProperties") is not False or prefix == "config":
        return [prefix]
    return [
        key
        for name, child in node.get("properties", {}).items()
        for key in _owned_value_keys(child, root, f"{prefix}.{name}" if prefix else name)
    ]
