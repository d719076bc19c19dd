"""Events with reasons on the pools' Deployments and the Spillover resource, folded like
client-go's recorder: a repeat bumps count and lastTimestamp on the same Event; a burst of
similar ones becomes one "(combined from similar events)" Event; an expired one is made anew.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spillover.config import load_config
from spillover.config_cluster import ClusterOperations
from spillover.controller.cluster import ClusterReporter
from spillover.controller.decisions import Mode, ScalePool, SetMode, SetWeights
from spillover.controller.events import COMBINED, SIMILAR_LIMIT, EventRecorder, Happening
from spillover.drivers.kube_events import EventSink
from spillover.drivers.kubernetes import ApiObjects
from tests.controller.cluster_setup import NAMESPACE, add_pools, controller_config
from tests.drivers.fake_kube_api import FakeKubeApi
from tests.drivers.kubeconfigs import write_kubeconfig

AT = 1_800_000_000.0


@pytest.fixture
def kube_api() -> Iterator[FakeKubeApi]:
    with FakeKubeApi(token="a") as api:
        add_pools(api)
        yield api


def _sink(tmp_path: Path, api: FakeKubeApi) -> EventSink:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api.url, "a")
    return EventSink(
        ApiObjects(ClusterOperations(namespace=NAMESPACE, kubeconfig=str(kubeconfig))), "a"
    )


def _events(api: FakeKubeApi) -> list[dict[str, Any]]:
    return api.store.of_kind("events", NAMESPACE)


def test_a_repeat_counts_on_the_same_event(tmp_path: Path, kube_api: FakeKubeApi) -> None:
    sink = _sink(tmp_path, kube_api)
    ref = sink.deployment(NAMESPACE, "triton-burst")
    assert ref is not None and ref.uid
    recorder = EventRecorder()
    happening = Happening(ref, "Normal", "Scaled", "Scaled burst to 2: overflow 196 rps")
    for tick in range(3):
        recorder.record(happening, sink, AT + 60 * tick)
    [event] = _events(kube_api)
    assert event["count"] == 3
    assert (event["firstTimestamp"], event["lastTimestamp"]) == (
        "2027-01-15T08:00:00Z", "2027-01-15T08:02:00Z",
    )  # fmt: skip
    assert event["involvedObject"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "namespace": NAMESPACE,
        "name": "triton-burst", "uid": ref.uid,
    }  # fmt: skip
    assert event["source"] == {"component": "spillover-controller"}
    assert len(kube_api.requested("objects_events_post")) == 1


def test_a_different_message_is_a_new_event(tmp_path: Path, kube_api: FakeKubeApi) -> None:
    sink = _sink(tmp_path, kube_api)
    ref = sink.deployment(NAMESPACE, "triton-burst")
    assert ref is not None
    recorder = EventRecorder()
    recorder.record(Happening(ref, "Normal", "Scaled", "Scaled burst to 2: a"), sink, AT)
    recorder.record(Happening(ref, "Normal", "Scaled", "Scaled burst to 3: b"), sink, AT + 1)
    assert sorted(e["message"] for e in _events(kube_api)) == [
        "Scaled burst to 2: a", "Scaled burst to 3: b",
    ]  # fmt: skip


def test_many_similar_events_are_combined(tmp_path: Path, kube_api: FakeKubeApi) -> None:
    sink = _sink(tmp_path, kube_api)
    ref = sink.deployment(NAMESPACE, "triton-burst")
    assert ref is not None
    recorder = EventRecorder()
    for n in range(SIMILAR_LIMIT + 5):
        recorder.record(Happening(ref, "Normal", "Scaled", f"Scaled burst to {n}"), sink, AT + n)
    events = _events(kube_api)
    assert len(events) == SIMILAR_LIMIT + 1
    [combined] = [e for e in events if e["message"].startswith(COMBINED)]
    assert combined["count"] == 5
    assert combined["message"] == f"{COMBINED}Scaled burst to {SIMILAR_LIMIT + 4}"


def test_an_expired_event_is_written_anew(tmp_path: Path, kube_api: FakeKubeApi) -> None:
    sink = _sink(tmp_path, kube_api)
    ref = sink.deployment(NAMESPACE, "triton-burst")
    assert ref is not None
    recorder = EventRecorder()
    happening = Happening(ref, "Normal", "Scaled", "Scaled burst to 2")
    recorder.record(happening, sink, AT)
    kube_api.store.objects.clear()  # the API server's event TTL passed
    recorder.record(happening, sink, AT + 3600)
    [event] = _events(kube_api)
    assert event["count"] == 1


def test_decisions_become_events_on_the_deployments_and_the_resource(
    tmp_path: Path, kube_api: FakeKubeApi
) -> None:
    config = load_config(controller_config(tmp_path, kube_api, "a", database=tmp_path / "c.db"))
    assert config.controller.cluster is not None
    reporter = ClusterReporter(config, config.controller.cluster, "a", lambda now: (0.0, 0.0))
    reporter.refresh()  # creates the Spillover resource
    said = [
        SetMode(Mode.BURST, "demand exceeds private capacity"),
        ScalePool("burst", 2, "overflow 196 rps needs 2 × 105 rps"),
        SetWeights((("private", 60), ("burst", 40)), "private full"),
    ]
    reporter.report(AT, _view(), said, [], None)
    by_object: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
    for event in _events(kube_api):
        key = (event["involvedObject"]["kind"], event["involvedObject"]["name"])
        by_object.setdefault(key, []).append((event["type"], event["reason"], event["message"]))
    assert sorted(by_object[("Deployment", "triton-burst")]) == [
        ("Normal", "Routed", "Routed 60% to private, 40% to burst: private full"),
        ("Normal", "Scaled", "Scaled burst to 2: overflow 196 rps needs 2 × 105 rps"),
    ]
    assert ("Normal", "ModeChanged", "Mode burst: demand exceeds private capacity") in by_object[
        ("Spillover", "spillover")
    ]
    assert len(by_object[("Spillover", "spillover")]) == 3
    status = kube_api.store.get("spillovers", NAMESPACE, "spillover")["status"]
    assert status["mode"] == "burst"


def _view() -> dict[str, Any]:
    pools = [
        {"pool": name, "role": name, "capacity_type": "owned", "status": "serving", "desired": 1,
         "ready": 1, "starting": 0, "draining": 0, "weight": 50, "served_rps": 1.0,
         "queue_time_ms": 1.0, "capacity_rps": 100.0, "usd_per_hour": 1.0}
        for name in ("private", "burst")
    ]  # fmt: skip
    return {"at": AT, "mode": "burst", "demand_rps": 196.0, "planned_rps": 200.0,
            "budget_limited": False, "tick_seconds": 2.0, "pools": pools}  # fmt: skip
