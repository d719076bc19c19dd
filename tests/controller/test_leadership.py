"""Leader election over a Lease (client-go's rules) against the fake API server.

Each elector has its own kubeconfig and ApiObjects, like two controller processes.
Time is driven by a fake monotonic clock so expiry is exact; the API calls are real
HTTP requests through the kubernetes client.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from spillover.config_cluster import ClusterOperations, LeaderElection
from spillover.controller.leadership import LeaderElector
from spillover.drivers.kube_lease import LeaseLock
from spillover.drivers.kubernetes import ApiConflict, ApiObjects
from tests.drivers.fake_kube_api import FakeKubeApi
from tests.drivers.kubeconfigs import write_kubeconfig

NAMESPACE = "spillover"
SETTINGS = LeaderElection(lease_duration_seconds=15, renew_deadline_seconds=10)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def kube_api() -> Iterator[FakeKubeApi]:
    with FakeKubeApi(token="a", more_tokens=("b", "c")) as api:
        yield api


def _elector(tmp_path: Path, api: FakeKubeApi, who: str, clock: Clock) -> LeaderElector:
    kubeconfig = write_kubeconfig(tmp_path / f"kubeconfig-{who}", api.url, who)
    cluster = ClusterOperations(namespace=NAMESPACE, kubeconfig=str(kubeconfig))
    lock = LeaseLock(ApiObjects(cluster), NAMESPACE, "spillover-controller")
    return LeaderElector(lock, SETTINGS, identity=who, monotonic=clock)


def _lease(api: FakeKubeApi) -> dict:
    lease = api.store.get("leases", NAMESPACE, "spillover-controller")
    assert lease is not None
    return lease


def test_the_first_candidate_creates_the_lease_and_the_second_waits(
    tmp_path: Path, kube_api: FakeKubeApi
) -> None:
    clock = Clock()
    a, b = _elector(tmp_path, kube_api, "a", clock), _elector(tmp_path, kube_api, "b", clock)
    a.step()
    b.step()
    assert (a.is_leader(), b.is_leader()) == (True, False)
    spec = _lease(kube_api)["spec"]
    assert spec["holderIdentity"] == "a"
    assert spec["leaseDurationSeconds"] == 15
    assert spec["leaseTransitions"] == 0
    assert b.leader == "a"


def test_a_follower_takes_an_unrenewed_lease_only_after_the_lease_duration(
    tmp_path: Path, kube_api: FakeKubeApi
) -> None:
    clock = Clock()
    a, b = _elector(tmp_path, kube_api, "a", clock), _elector(tmp_path, kube_api, "b", clock)
    a.step()
    b.step()  # b sees the record at t=1000
    # a dies: no more renews. b keeps trying every retry period.
    clock.now += 14.9
    b.step()
    assert not b.is_leader()
    clock.now += 0.2  # 15.1 s since b saw the record change
    b.step()
    assert b.is_leader()
    spec = _lease(kube_api)["spec"]
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("b", 1)


def test_a_renewing_leader_keeps_the_lease(tmp_path: Path, kube_api: FakeKubeApi) -> None:
    clock = Clock()
    a, b = _elector(tmp_path, kube_api, "a", clock), _elector(tmp_path, kube_api, "b", clock)
    a.step()
    for _ in range(20):  # 40 s of renews every 2 s
        clock.now += 2
        a.step()
        b.step()
        assert (a.is_leader(), b.is_leader()) == (True, False)
    assert _lease(kube_api)["spec"]["acquireTime"] is not None


def test_a_leader_that_cannot_renew_stops_within_the_renew_deadline(
    tmp_path: Path, kube_api: FakeKubeApi
) -> None:
    clock = Clock()
    a = _elector(tmp_path, kube_api, "a", clock)
    a.step()
    kube_api.fail("objects_leases_put", 500)
    kube_api.fail("objects_leases_get", 500)
    clock.now += 9.9
    a.step()
    assert a.is_leader(), "still inside the renew deadline"
    clock.now += 0.2
    assert not a.is_leader(), "past the renew deadline with no renew: stop acting"


def test_a_leader_whose_lease_was_taken_stops_acting(tmp_path: Path, kube_api: FakeKubeApi) -> None:
    clock = Clock()
    a = _elector(tmp_path, kube_api, "a", clock)
    a.step()
    lease = _lease(kube_api)
    lease["spec"]["holderIdentity"] = "someone-else"
    kube_api.store.put_directly("leases", NAMESPACE, lease)
    clock.now += 2
    a.step()  # fast path conflicts (409), the reread shows another holder
    clock.now += 10
    a.step()
    assert not a.is_leader()
    assert a.leader == "someone-else"


def test_two_candidates_writing_the_same_version_one_is_refused(
    tmp_path: Path, kube_api: FakeKubeApi
) -> None:
    """Two candidates that read the same expired record both write it: the API server's
    resourceVersion check lets the first through and refuses the second (409). The
    fake does what every API server's storage does; the real_cluster group runs it too."""
    clock = Clock()
    _elector(tmp_path, kube_api, "a", clock).step()
    b, c = _elector(tmp_path, kube_api, "b", clock), _elector(tmp_path, kube_api, "c", clock)
    read_b, read_c = b.lock.get(), c.lock.get()
    assert read_b is not None and read_c is not None
    b.lock.update(replace(read_b[0], holder="b", transitions=1))
    with pytest.raises(ApiConflict):
        c.lock.update(replace(read_c[0], holder="c", transitions=1))
    assert _lease(kube_api)["spec"]["holderIdentity"] == "b"


def test_release_lets_a_follower_take_over_at_once(tmp_path: Path, kube_api: FakeKubeApi) -> None:
    clock = Clock()
    a, b = _elector(tmp_path, kube_api, "a", clock), _elector(tmp_path, kube_api, "b", clock)
    a.step()
    b.step()
    a.release()
    assert _lease(kube_api)["spec"]["holderIdentity"] == ""
    assert not a.is_leader()
    clock.now += 2
    b.step()
    assert b.is_leader()
