"""Tests against a real API server: what the fake deliberately does not do.

Skipped unless SPILLOVER_TEST_KUBECONFIG names a kubeconfig whose current context may
create namespaces and CRDs (a throwaway kind or k3d cluster; see the README). Each run
works in a namespace of its own, deleted at the end; the CRD is applied from the chart
and left in place (other runs share it).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests.charts.rendering import chart_dir

KUBECONFIG = os.environ.get("SPILLOVER_TEST_KUBECONFIG")
CRD = chart_dir("spillover-controller") / "crds" / "spillovers.spillover.io.yaml"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="SPILLOVER_TEST_KUBECONFIG names no cluster")
    for item in items:
        if "real_cluster" in item.nodeid:
            item.add_marker(pytest.mark.real_cluster)
            if not KUBECONFIG:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def kubeconfig() -> Path:
    assert KUBECONFIG
    return Path(KUBECONFIG)


@pytest.fixture(scope="session")
def api_client(kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kubeconfig), persist_config=False)


@pytest.fixture(scope="session")
def crd(api_client: client.ApiClient) -> dict[str, Any]:
    """The chart's CRD, created or replaced, once established."""
    manifest: dict[str, Any] = yaml.safe_load(CRD.read_text())
    extensions = client.ApiextensionsV1Api(api_client)
    try:
        extensions.create_custom_resource_definition(manifest)
    except ApiException as error:
        if error.status != 409:
            raise
        current = extensions.read_custom_resource_definition(manifest["metadata"]["name"])
        manifest["metadata"]["resourceVersion"] = current.metadata.resource_version
        extensions.replace_custom_resource_definition(manifest["metadata"]["name"], manifest)
    for _ in range(100):
        found = extensions.read_custom_resource_definition(manifest["metadata"]["name"])
        conditions = {c.type: c.status for c in (found.status.conditions or [])}
        if conditions.get("Established") == "True":
            return manifest
        time.sleep(0.1)
    raise AssertionError(f"the CRD was not established: {conditions}")


@pytest.fixture
def namespace(api_client: client.ApiClient) -> Iterator[str]:
    name = f"spillover-test-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": name}})
    try:
        yield name
    finally:
        core.delete_namespace(name)
