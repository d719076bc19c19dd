"""Pause through `spillover.io/paused: "true"` on the Spillover resource.

The loop runs in-process with the real Kubernetes pool driver, the real status
resource and Event writers (against the fake API server) and a real ledger; only
the observer (a fixed demand of 300 rps, more than private serves) and the gateway
(a recorder) stand in. Paused, the controller observes, decides, records and
reports, and changes nothing; unpaused, it applies the full desired state again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spillover.config import load_config
from spillover.controller.actuators import Actuators
from spillover.controller.cluster import ClusterReporter
from spillover.controller.exporter import Exporter
from spillover.controller.ledger import Ledger
from spillover.controller.loop import ControllerLoop
from spillover.controller.snapshot import PoolObservation, ReplicaObservation, Snapshot
from spillover.drivers.kubernetes import KubernetesPoolDriver
from tests.controller.cluster_setup import NAMESPACE, add_pools, controller_config
from tests.drivers.fake_kube_api import FakeKubeApi

START = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        self.now += 2
        return self.now


class Observer:
    """Private full (2 ready), burst 1 ready, 300 rps arriving: burst must grow."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def observe(self) -> Snapshot:
        def ready(pool: str, count: int) -> PoolObservation:
            replicas = tuple(
                ReplicaObservation(f"{pool}-{i}", "ready", START - 60) for i in range(count)
            )
            return PoolObservation(pool, replicas, served_rps=70.0 * count, queue_time_ms=1.0)

        return Snapshot(self.clock.now, 300.0, (ready("private", 2), ready("burst", 1)))

    def gateway_counters(self) -> dict[str, tuple[int, int]]:
        return {}


class Gateway:
    def __init__(self) -> None:
        self.shares: list[dict[str, int]] = []

    def set_weights(self, shares: Any) -> None:
        self.shares.append(dict(shares))


@pytest.fixture
def kube_api() -> Iterator[FakeKubeApi]:
    with FakeKubeApi(token="a") as api:
        add_pools(api)
        yield api


def _metric(exporter: Exporter, name: str) -> float:
    for family in exporter.registry.collect():
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise AssertionError(f"no {name}")


def _set_paused(api: FakeKubeApi, value: str | None) -> None:
    resource = api.store.get("spillovers", NAMESPACE, "spillover")
    assert resource is not None
    annotations = resource["metadata"].setdefault("annotations", {})
    if value is None:
        annotations.pop("spillover.io/paused", None)
    else:
        annotations["spillover.io/paused"] = value
    api.store.put_directly("spillovers", NAMESPACE, resource)


def _events(api: FakeKubeApi, kind: str, name: str) -> list[dict[str, Any]]:
    return [
        event
        for event in api.store.of_kind("events", NAMESPACE)
        if event["involvedObject"]["kind"] == kind and event["involvedObject"]["name"] == name
    ]


def test_paused_the_controller_observes_records_and_reports_but_changes_nothing(
    tmp_path: Path, kube_api: FakeKubeApi, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_config(controller_config(tmp_path, kube_api, "a", database=tmp_path / "c.db"))
    assert config.controller.cluster is not None
    clock, gateway = Clock(), Gateway()
    drivers = {pool.name: KubernetesPoolDriver(pool) for pool in config.pools}
    ledger = Ledger(tmp_path / "c.db", window_seconds=2)
    exporter = Exporter(config)
    reporter = ClusterReporter(config, config.controller.cluster, "a", lambda now: (1.5, 20.0))
    loop = ControllerLoop(
        config, Observer(clock), Actuators(drivers, gateway), ledger, exporter, clock,  # type: ignore[arg-type]
        cluster=reporter,
    )  # fmt: skip
    burst = kube_api.deployments[(NAMESPACE, "triton-burst")]

    loop.tick()
    grown = burst.replicas
    assert grown > 1, "acting: burst grows for the overflow"
    assert gateway.shares
    assert any(e["reason"] == "Scaled" for e in _events(kube_api, "Deployment", "triton-burst"))
    assert _metric(exporter, "spillover_paused") == 0

    _set_paused(kube_api, "true")
    burst.replicas = 1  # someone scales it down by hand during the maintenance window
    patches, weights = len(kube_api.requested("patch_scale")), len(gateway.shares)
    watermark = ledger.watermark("burst")
    caplog.set_level(logging.INFO)
    for _ in range(3):
        loop.tick()
    assert burst.replicas == 1, "paused: nothing scaled"
    assert len(kube_api.requested("patch_scale")) == patches
    assert len(gateway.shares) == weights, "paused: no weights set"
    assert ledger.watermark("burst") > watermark, "paused: spend is still recorded"
    status = kube_api.store.get("spillovers", NAMESPACE, "spillover")["status"]
    assert status["paused"] is True
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Paused")
    assert _metric(exporter, "spillover_paused") == 1
    assert [e["reason"] for e in _events(kube_api, "Spillover", "spillover")].count("Paused") == 1
    assert any(e["reason"] == "Paused" for e in _events(kube_api, "Deployment", "triton-burst"))
    assert "paused: spillover.io/paused" in caplog.text
    assert "paused, not applied: scale burst" in caplog.text
    journal = [d.reason for d in ledger.recent_decisions(20)]
    assert any(reason.startswith("(paused, not applied)") for reason in journal)

    _set_paused(kube_api, None)
    loop.tick()
    assert burst.replicas == grown, "resumed: the full desired state is applied again"
    assert _metric(exporter, "spillover_paused") == 0
    reasons = [e["reason"] for e in _events(kube_api, "Spillover", "spillover")]
    assert "Resumed" in reasons
    status = kube_api.store.get("spillovers", NAMESPACE, "spillover")["status"]
    assert status["paused"] is False
    ledger.close()


@pytest.mark.parametrize("value", ["false", "", "yes", "TRUE "])
def test_only_true_pauses(tmp_path: Path, kube_api: FakeKubeApi, value: str) -> None:
    from spillover.drivers.kube_status import is_paused

    resource = {"metadata": {"annotations": {"spillover.io/paused": value}}}
    assert is_paused(resource) == (value.strip().lower() == "true")
