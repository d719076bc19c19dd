"""Render the charts offline with Helm's own engine; check manifests against Kubernetes' schemas.

helm-python-sdk binds libhelm_c (Helm 4's Go SDK behind a C ABI, shipped inside the wheel), so
rendering needs no helm binary, no cluster and no network. Its `Chart.render` is `helm
template`; the library's render call also takes `kube_version` (`helm template --kube-version`),
which the 0.2 Python wrapper does not expose yet, so `render` passes it through the wrapper's
own native call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import yaml
from helm_python import _native

CHARTS_DIR = Path(__file__).resolve().parents[2] / "charts"
CHART_NAMES = ("triton-recommender", "spillover-gateway", "spillover-controller")
NAMESPACE = "spillover"
"""Namespace of every test release; the charts' defaults assume it (see the controller config)."""

NEWEST_KUBERNETES = kubernetes_validate.latest_version()
"""Newest schema kubernetes-validate ships: manifests must not use APIs removed since the floor."""

CUSTOM_RESOURCES = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
"""Kinds from CRDs, for which kubernetes-validate has no schema (the tests check them apart)."""


def chart_dir(name: str) -> Path:
    return CHARTS_DIR / name


def ci_values_files(name: str) -> list[Path]:
    return sorted((chart_dir(name) / "ci").glob("*-values.yaml"))


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def kube_version_floor(name: str) -> str:
    """The oldest Kubernetes the chart supports, from its Chart.yaml kubeVersion (">=1.28.0-0")."""
    constraint = load_yaml(chart_dir(name) / "Chart.yaml")["kubeVersion"]
    match = re.fullmatch(r">=\s*(\d+\.\d+\.\d+)(-0)?", constraint)
    assert match, f"{name}: kubeVersion {constraint!r} is not a '>=X.Y.Z-0' floor"
    return match[1]


@dataclass(frozen=True)
class Rendered:
    """One chart's rendered templates, as `helm template` would print them."""

    templates: dict[str, str]
    """Template path (e.g. 'triton-recommender/templates/service.yaml') -> rendered text."""

    @property
    def notes(self) -> str:
        return next((text for path, text in self.templates.items() if path.endswith("NOTES.txt")))

    @property
    def manifests(self) -> list[dict[str, Any]]:
        return [manifest for _, manifest in self.by_template()]

    def by_template(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for path, text in sorted(self.templates.items()):
            if not path.endswith(".yaml"):
                continue
            for document in yaml.safe_load_all(text):
                if document:
                    yield path, document

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [manifest for manifest in self.manifests if manifest["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [m for m in self.all(kind) if name is None or m["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
        return found[0]

    def kinds(self) -> set[str]:
        return {manifest["kind"] for manifest in self.manifests}


def render(
    chart: helm.Chart,
    values: dict[str, Any] | None = None,
    *,
    kube_version: str,
    release: str | None = None,
) -> Rendered:
    """`helm template <release> <chart> --namespace spillover --kube-version <v> -f values`.

    Raises helm_python.HelmValuesError when the values fail values.schema.json, and
    HelmRenderError when a template fails (e.g. a `fail` with its message).
    """
    options = {
        "name": release or chart.name,
        "namespace": NAMESPACE,
        "kube_version": f"v{kube_version}",
    }
    text = _native.call_string(
        "helm_render", chart._raw(), json.dumps(values or {}), json.dumps(options)
    )
    return Rendered(templates=json.loads(text))


def validate(manifest: dict[str, Any], kube_version: str) -> None:
    """Check one manifest against Kubernetes' OpenAPI schema in strict mode (no unknown fields)."""
    if (manifest["apiVersion"], manifest["kind"]) in CUSTOM_RESOURCES:
        return
    where = f"{manifest['kind']} {manifest['metadata']['name']} (Kubernetes {kube_version})"
    try:
        kubernetes_validate.validate(manifest, kube_version, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = ".".join(str(part) for part in error.path)
        raise AssertionError(f"{where}: {path}: {error.message}") from None
    except kubernetes_validate.SchemaNotFoundError as error:
        raise AssertionError(f"{where}: {error.message}") from None


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def container(workload: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    containers: list[dict[str, Any]] = pod_spec(workload)["containers"]
    if name is None:
        assert len(containers) == 1, [c["name"] for c in containers]
        return containers[0]
    return next(c for c in containers if c["name"] == name)


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """True when a matchLabels selector picks an object with these labels."""
    return all(labels.get(key) == value for key, value in selector.items())
