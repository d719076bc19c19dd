"""The Lease, status resource, Events and pool driver against a real API server: the
server-side semantics the fake leaves out (status subresource, printer columns, CRD
schema acceptance, Lease conflicts, Event storage).

Run: SPILLOVER_TEST_KUBECONFIG=/path/to/kind.yaml .venv/bin/pytest -m real_cluster
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from spillover.config import KubernetesTarget, PoolConfig, Price
from spillover.config_cluster import ClusterOperations, LeaderElection
from spillover.controller.events import EventRecorder, Happening
from spillover.controller.leadership import LeaderElector
from spillover.controller.status_resource import Extras, status_body
from spillover.drivers.kube_events import EventSink
from spillover.drivers.kube_lease import LeaseLock
from spillover.drivers.kube_status import GROUP, PLURAL, VERSION, StatusResource, reference_of
from spillover.drivers.kubernetes import ApiConflict, ApiObjects, KubernetesPoolDriver

COLUMNS = ["Name", "MODE", "DEMAND", "PRIVATE", "BURST", "$/H", "TODAY", "AGE"]


def _objects(kubeconfig: Path, namespace: str) -> ApiObjects:
    return ApiObjects(ClusterOperations(namespace=namespace, kubeconfig=str(kubeconfig)))


def _view(at: float) -> dict[str, Any]:
    pool = {
        "pool": "private",
        "role": "private",
        "capacity_type": "owned",
        "status": "serving",
        "desired": 2,
        "ready": 2,
        "starting": 0,
        "draining": 0,
        "weight": 100,
        "served_rps": 150.0,
        "queue_time_ms": 1.0,
        "capacity_rps": 105.0,
        "usd_per_hour": 2.1,
    }
    return {"at": at, "mode": "normal", "demand_rps": 150.0, "planned_rps": 160.0,
            "budget_limited": False, "tick_seconds": 2.0, "pools": [pool]}  # fmt: skip


def test_the_status_subresource_and_printer_columns(
    kubeconfig: Path, api_client: client.ApiClient, crd: dict[str, Any], namespace: str
) -> None:
    resource = StatusResource(_objects(kubeconfig, namespace), namespace, "spillover")
    created = resource.read()
    assert created["metadata"]["uid"]
    body = status_body(_view(time.time()), Extras(1.25, 30.0, "me", False, None, []), None)
    written = resource.write_status(body)
    assert written["status"]["mode"] == "normal"
    # The status subresource ignores all but status; the main resource ignores status.
    custom = client.CustomObjectsApi(api_client)
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "spillover",
        {"metadata": {"labels": {"via": "status"}}, "status": {"mode": "burst"}},
    )  # fmt: skip
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "spillover", {"status": {"mode": "safe"}}
    )
    stored = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "spillover")
    assert stored["status"]["mode"] == "burst"
    assert "via" not in (stored["metadata"].get("labels") or {})
    # What `kubectl get spillovers` prints: the API server's Table.
    table = api_client.call_api(
        f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}", "GET",
        header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
        response_types_map={200: "object"}, auth_settings=["BearerToken"],
        _return_http_data_only=True,
    )  # fmt: skip
    names = [c["name"] for c in table["columnDefinitions"] if c.get("priority", 0) == 0]
    assert names == COLUMNS
    [row] = table["rows"]
    assert row["cells"][1:6] == ["burst", 150, "2/2", "0/0", 2.1]


def test_the_api_server_refuses_a_status_the_schema_refuses(
    kubeconfig: Path, crd: dict[str, Any], namespace: str
) -> None:
    resource = StatusResource(_objects(kubeconfig, namespace), namespace, "spillover")
    resource.read()
    with pytest.raises(Exception, match="mode"):
        resource.write_status({"mode": "panic"})


def test_lease_conflicts_and_takeover(kubeconfig: Path, namespace: str) -> None:
    settings = LeaderElection(lease_duration_seconds=2, renew_deadline_seconds=1.5,
                              retry_period_seconds=0.5)  # fmt: skip

    def elector(who: str) -> LeaderElector:
        lock = LeaseLock(_objects(kubeconfig, namespace), namespace, "spillover-controller")
        return LeaderElector(lock, settings, identity=who)

    a, b = elector("a"), elector("b")
    a.step()
    b.step()
    assert (a.is_leader(), b.is_leader()) == (True, False)
    read_a, read_b = a.lock.get(), b.lock.get()
    assert read_a is not None and read_b is not None
    a.lock.update(replace(read_a[0], renew_time=None))
    with pytest.raises(ApiConflict):
        b.lock.update(replace(read_b[0], holder="b"))
    time.sleep(2.2)
    b.step()
    assert b.is_leader()


def test_events_are_stored_and_counted(
    kubeconfig: Path, api_client: client.ApiClient, crd: dict[str, Any], namespace: str
) -> None:
    objects = _objects(kubeconfig, namespace)
    resource = StatusResource(objects, namespace, "spillover").read()
    sink, recorder = EventSink(objects, "me"), EventRecorder()
    happening = Happening(reference_of(resource), "Normal", "Scaled", "Scaled burst to 2: test")
    recorder.record(happening, sink, time.time())
    recorder.record(happening, sink, time.time() + 1)
    events = client.CoreV1Api(api_client).list_namespaced_event(namespace)
    [event] = [e for e in events.items if e.reason == "Scaled"]
    assert event.count == 2
    assert event.involved_object.uid == resource["metadata"]["uid"]


def test_the_pool_driver_scales_a_deployment(
    kubeconfig: Path, api_client: client.ApiClient, namespace: str
) -> None:
    labels = {"app": "triton"}
    client.AppsV1Api(api_client).create_namespaced_deployment(namespace, {
        "metadata": {"name": "triton"},
        "spec": {"replicas": 0, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.9"}]}}},
    })  # fmt: skip
    pool = PoolConfig(
        name="burst", role="burst", driver="kubernetes", capacity_type="spot", min_replicas=0,
        max_replicas=2, price=Price(usd_per_replica_hour=1.0, source="test"),
        kubernetes=KubernetesTarget(namespace=namespace, deployment="triton",
                                    kubeconfig=str(kubeconfig)),
    )  # fmt: skip
    driver = KubernetesPoolDriver(pool)
    driver.scale("burst", 1)
    scale = client.AppsV1Api(api_client).read_namespaced_deployment_scale("triton", namespace)
    assert scale.spec.replicas == 1
    driver.scale("burst", 0)
