"""KubernetesPoolDriver with the real kubernetes client against a fake API server.

The driver builds its client from a kubeconfig written to tmp_path, as it does in a
cluster, so the code under test is the production path down to the HTTP requests.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from spillover.config import KubernetesTarget, PoolConfig, Price
from spillover.controller.rates import replica_observation
from spillover.controller.snapshot import PoolObservation
from spillover.drivers.kubernetes import KubernetesPoolDriver, api_client_for
from spillover.drivers.pools import ReplicaTarget
from spillover.errors import PermanentError, TemporaryError
from spillover.settings import KubernetesSettings
from tests.drivers.fake_kube_api import (
    MERGE_PATCH_TYPES,
    Deployment,
    FakeKubeApi,
    pod,
)

NAMESPACE = "inference"
DEPLOYMENT = "triton-burst"
LABELS = {"app.kubernetes.io/name": "triton-recommender", "app.kubernetes.io/instance": "burst"}
CREATED_EPOCH = datetime(2025, 11, 11, tzinfo=timezone.utc).timestamp()
TIMEOUT_S = 0.5
"""Short, so the hang tests are quick; the fake hangs 10 s, then answers normally."""


@pytest.fixture
def kube_api() -> Iterator[FakeKubeApi]:
    with FakeKubeApi(token="test-token") as api:
        api.add_deployment(Deployment(NAMESPACE, DEPLOYMENT, replicas=2, match_labels=LABELS))
        yield api


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def kubeconfig(tmp_path: Path, kube_api: FakeKubeApi) -> Path:
    """Context `fake` reaches the fake server; the current context `elsewhere` nothing."""
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "fake", "cluster": {"server": kube_api.url}},
            {"name": "elsewhere", "cluster": {"server": f"http://127.0.0.1:{_closed_port()}"}},
        ],
        "users": [
            {"name": "controller", "user": {"token": "test-token"}},
            {"name": "stranger", "user": {"token": "wrong-token"}},
        ],
        "contexts": [
            {"name": "fake", "context": {"cluster": "fake", "user": "controller"}},
            {"name": "elsewhere", "context": {"cluster": "elsewhere", "user": "controller"}},
            {"name": "stranger", "context": {"cluster": "fake", "user": "stranger"}},
        ],
        "current-context": "elsewhere",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(document))
    return path


def _pool(
    kubeconfig: Path | str | None, context: str | None = "fake", deployment: str = DEPLOYMENT
) -> PoolConfig:
    return PoolConfig(
        name="burst",
        role="burst",
        driver="kubernetes",
        max_replicas=8,
        capacity_type="spot",
        price=Price(usd_per_replica_hour=1.0, source="test"),
        kubernetes=KubernetesTarget(
            namespace=NAMESPACE,
            deployment=deployment,
            kubeconfig=None if kubeconfig is None else str(kubeconfig),
            context=context,
        ),
    )


@pytest.fixture
def driver(kubeconfig: Path) -> KubernetesPoolDriver:
    return KubernetesPoolDriver(
        _pool(kubeconfig), settings=KubernetesSettings(request_timeout_s=TIMEOUT_S)
    )


# --- scale ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "target", "patched"),
    [
        pytest.param(0, 3, True, id="up-from-zero"),
        pytest.param(2, 5, True, id="up"),
        pytest.param(3, 0, True, id="down-to-zero"),
        pytest.param(2, 2, False, id="unchanged"),
        pytest.param(0, 0, False, id="unchanged-at-zero-where-scale-omits-replicas"),
    ],
)
def test_scale_patches_the_scale_subresource_only_when_it_changes(
    kube_api: FakeKubeApi, driver: KubernetesPoolDriver, current: int, target: int, patched: bool
):
    kube_api.deployments[(NAMESPACE, DEPLOYMENT)].replicas = current
    driver.scale("burst", target)
    driver.scale("burst", target)  # level triggered: the second call finds it done
    patches = kube_api.requested("patch_scale")
    assert len(patches) == (1 if patched else 0)
    assert kube_api.deployments[(NAMESPACE, DEPLOYMENT)].replicas == target
    if patched:
        assert (
            patches[0].path
            == f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{DEPLOYMENT}/scale"
        )
        assert patches[0].body == {"spec": {"replicas": target}}
        assert patches[0].headers["content-type"] in MERGE_PATCH_TYPES


def test_the_pools_context_and_its_credentials_are_used(
    kube_api: FakeKubeApi, driver: KubernetesPoolDriver
):
    driver.scale("burst", 4)
    assert kube_api.requests  # the current context (`elsewhere`) would reach nothing
    assert {request.headers["authorization"] for request in kube_api.requests} == {
        "Bearer test-token"
    }


def test_an_injected_client_is_used_instead_of_the_pools_kubeconfig(
    kube_api: FakeKubeApi, kubeconfig: Path, tmp_path: Path
):
    client = api_client_for(
        KubernetesTarget(
            namespace=NAMESPACE, deployment=DEPLOYMENT, kubeconfig=str(kubeconfig), context="fake"
        )
    )
    driver = KubernetesPoolDriver(_pool(tmp_path / "absent"), api_client=client)
    driver.scale("burst", 1)
    assert kube_api.deployments[(NAMESPACE, DEPLOYMENT)].replicas == 1


def test_scaling_another_pool_is_refused(kube_api: FakeKubeApi, driver: KubernetesPoolDriver):
    with pytest.raises(PermanentError, match="driver of pool burst was asked to scale private"):
        driver.scale("private", 1)
    assert kube_api.requested("patch_scale") == []


# --- error mapping -----------------------------------------------------------------


PERMANENT = None
"""In the `delay` column: the error is a PermanentError (no retry helps)."""


@pytest.mark.parametrize(
    ("route", "status", "retry_after", "delay", "says"),
    [
        pytest.param(
            "get_scale",
            403,
            None,
            PERMANENT,
            [
                "get deployments/scale of inference/triton-burst",
                "get and patch on deployments/scale",
            ],
            id="read-forbidden",
        ),
        pytest.param(
            "patch_scale",
            403,
            None,
            PERMANENT,
            ["may not patch deployments/scale in namespace inference", "Role"],
            id="patch-forbidden",
        ),
        pytest.param("patch_scale", 422, None, PERMANENT, ["422", "injected 422"], id="invalid"),
        pytest.param("patch_scale", 409, None, 1.0, ["409"], id="conflict"),
        pytest.param("get_scale", 429, "7", 7.0, ["429"], id="throttled-retry-after"),
        pytest.param("get_scale", 500, None, 1.0, ["500"], id="server-error"),
        pytest.param("patch_scale", 503, "2", 2.0, ["503"], id="unavailable-retry-after"),
    ],
)
def test_scale_maps_api_errors_to_what_the_caller_should_do(
    kube_api: FakeKubeApi,
    driver: KubernetesPoolDriver,
    route: str,
    status: int,
    retry_after: str | None,
    delay: float | None,
    says: list[str],
):
    kube_api.fail(route, status, retry_after)
    with pytest.raises((TemporaryError, PermanentError)) as raised:
        driver.scale("burst", 5)
    if delay is PERMANENT:
        assert isinstance(raised.value, PermanentError)
    else:
        assert isinstance(raised.value, TemporaryError)
        assert raised.value.delay == delay
    for fragment in says:
        assert fragment in str(raised.value)


def test_a_missing_deployment_names_where_it_was_looked_for(
    kube_api: FakeKubeApi, kubeconfig: Path
):
    driver = KubernetesPoolDriver(_pool(kubeconfig, deployment="triton-typo"))
    with pytest.raises(PermanentError) as raised:
        driver.scale("burst", 1)
    message = str(raised.value)
    assert "404" in message
    assert "deployment triton-typo exists in namespace inference" in message
    assert 'deployments.apps "triton-typo" not found' in message  # the API's own words


def test_rejected_credentials_are_permanent(kube_api: FakeKubeApi, kubeconfig: Path):
    driver = KubernetesPoolDriver(_pool(kubeconfig, context="stranger"))
    with pytest.raises(PermanentError, match="401.*did not accept the credentials"):
        driver.scale("burst", 1)


@pytest.mark.parametrize(
    ("route", "call"),
    [
        pytest.param("get_scale", lambda driver: driver.scale("burst", 3), id="scale-read"),
        pytest.param("patch_scale", lambda driver: driver.scale("burst", 3), id="scale-patch"),
        pytest.param("list_pods", lambda driver: driver.replicas(), id="replicas-list"),
    ],
)
def test_a_hung_api_server_is_a_temporary_error_not_a_stalled_tick(
    kube_api: FakeKubeApi, driver: KubernetesPoolDriver, route: str, call: Any
):
    kube_api.hang(route)
    with pytest.raises(TemporaryError, match="did not answer"):
        call(driver)
    # One attempt: urllib3's own retries would multiply the stall.
    assert len(kube_api.requested(route)) == 1


def test_an_unreachable_api_server_is_temporary(kube_api: FakeKubeApi, kubeconfig: Path):
    driver = KubernetesPoolDriver(_pool(kubeconfig, context="elsewhere"))
    with pytest.raises(TemporaryError, match="did not answer"):
        driver.replicas()


@pytest.mark.parametrize(
    ("route", "status", "error", "says"),
    [
        pytest.param(
            "list_pods",
            403,
            PermanentError,
            "may not list pods in namespace inference",
            id="pods-forbidden",
        ),
        pytest.param("get_deployment", 500, TemporaryError, "get deployments", id="server-error"),
        pytest.param("get_deployment", 404, PermanentError, "check that deployment", id="missing"),
    ],
)
def test_replicas_maps_api_errors(
    kube_api: FakeKubeApi,
    driver: KubernetesPoolDriver,
    route: str,
    status: int,
    error: type[Exception],
    says: str,
):
    kube_api.fail(route, status)
    with pytest.raises(error, match=says):
        driver.replicas()


# --- building the client -------------------------------------------------------------


def test_a_missing_kubeconfig_is_permanent_and_named(tmp_path: Path):
    driver = KubernetesPoolDriver(_pool(tmp_path / "nowhere" / "kubeconfig"))
    with pytest.raises(PermanentError, match=r"kubeconfig .*nowhere/kubeconfig does not exist"):
        driver.replicas()


def test_an_unknown_context_is_permanent_and_named(kubeconfig: Path):
    driver = KubernetesPoolDriver(_pool(kubeconfig, context="prod-eu"))
    with pytest.raises(PermanentError, match="prod-eu"):
        driver.scale("burst", 1)


def test_without_kubeconfig_outside_a_pod_says_what_to_set(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    driver = KubernetesPoolDriver(_pool(None, context=None))
    with pytest.raises(
        PermanentError, match="run the controller in a pod or set kubernetes.kubeconfig"
    ):
        driver.replicas()


def test_a_context_without_a_kubeconfig_is_refused_when_the_config_loads():
    with pytest.raises(ValidationError, match="context is set without a kubeconfig"):
        _pool(None, context="fake")


def test_one_client_per_kubeconfig_and_context(kubeconfig: Path):
    fake = KubernetesTarget(
        namespace="a", deployment="b", kubeconfig=str(kubeconfig), context="fake"
    )
    same_cluster = KubernetesTarget(
        namespace="c", deployment="d", kubeconfig=str(kubeconfig), context="fake"
    )
    other = KubernetesTarget(
        namespace="a", deployment="b", kubeconfig=str(kubeconfig), context="elsewhere"
    )
    assert api_client_for(fake) is api_client_for(same_cluster)
    assert api_client_for(fake) is not api_client_for(other)


# --- replicas ------------------------------------------------------------------------


def _replica(
    name: str, alive: bool, ready: bool, metrics_url: str, draining: bool = False
) -> ReplicaTarget:
    return ReplicaTarget(
        name=name,
        pool="burst",
        alive=alive,
        ready=ready,
        started_at=CREATED_EPOCH,
        metrics_url=metrics_url,
        draining=draining,
    )


@pytest.mark.parametrize(
    ("pod_options", "expected"),
    [
        pytest.param(
            {},
            _replica("triton-burst-7d9f-a", True, True, "http://10.0.3.7:8002/metrics"),
            id="running-ready",
        ),
        pytest.param(
            {"ready": False},
            _replica("triton-burst-7d9f-a", True, False, "http://10.0.3.7:8002/metrics"),
            id="running-loading-model",
        ),
        pytest.param(
            {"phase": "Pending", "pod_ip": None, "ready": False},
            _replica("triton-burst-7d9f-a", True, False, ""),
            id="pending-without-ip",
        ),
        pytest.param(
            {"deleting": True},
            _replica("triton-burst-7d9f-a", True, True, "http://10.0.3.7:8002/metrics", True),
            id="terminating-while-still-ready",
        ),
        pytest.param(
            {"deleting": True, "ready": False},
            _replica("triton-burst-7d9f-a", True, False, "http://10.0.3.7:8002/metrics", True),
            id="terminating-out-of-endpoints",
        ),
        pytest.param(
            {"deleting": True, "phase": "Failed", "ready": False},
            _replica("triton-burst-7d9f-a", False, False, "http://10.0.3.7:8002/metrics", True),
            id="terminating-after-it-failed",
        ),
        pytest.param(
            {"phase": "Failed", "ready": False},
            _replica("triton-burst-7d9f-a", False, False, "http://10.0.3.7:8002/metrics"),
            id="failed",
        ),
        pytest.param(
            {"phase": "Succeeded", "ready": False},
            _replica("triton-burst-7d9f-a", False, False, "http://10.0.3.7:8002/metrics"),
            id="succeeded",
        ),
        pytest.param(
            {"phase": "Unknown", "ready": False},
            _replica("triton-burst-7d9f-a", False, False, "http://10.0.3.7:8002/metrics"),
            id="node-lost",
        ),
        pytest.param(
            {"ports": (("http", 8000), ("metrics", 9102))},
            _replica("triton-burst-7d9f-a", True, True, "http://10.0.3.7:9102/metrics"),
            id="named-metrics-port",
        ),
        pytest.param(
            {"ports": (("http", 8000),)},
            _replica("triton-burst-7d9f-a", True, True, "http://10.0.3.7:8002/metrics"),
            id="no-metrics-port-named",
        ),
        pytest.param(
            {"pod_ip": "fd00:10::7"},
            _replica("triton-burst-7d9f-a", True, True, "http://[fd00:10::7]:8002/metrics"),
            id="ipv6",
        ),
    ],
)
def test_each_pod_of_the_deployment_is_a_replica(
    kube_api: FakeKubeApi,
    driver: KubernetesPoolDriver,
    pod_options: dict[str, Any],
    expected: ReplicaTarget,
):
    kube_api.pods.append(pod("triton-burst-7d9f-a", LABELS, **pod_options))
    assert driver.replicas() == [expected]


def test_a_terminating_pod_is_a_draining_replica_billed_until_it_is_gone(
    kube_api: FakeKubeApi, driver: KubernetesPoolDriver
):
    """A spot node reclaimed or a scale-down: the pod has a deletion timestamp and runs
    out its grace period. It is out of rotation and no capacity, but it still costs."""
    kube_api.pods += [
        pod("triton-burst-a", LABELS, created="2025-11-11T00:00:01Z"),
        pod("triton-burst-b", LABELS, created="2025-11-11T00:00:02Z", deleting=True),
        pod("triton-burst-c", LABELS, created="2025-11-11T00:00:03Z", ready=False),
    ]
    replicas = driver.replicas()
    assert [(r.name, r.alive, r.draining) for r in replicas] == [
        ("triton-burst-a", True, False),
        ("triton-burst-b", True, True),
        ("triton-burst-c", True, False),
    ]
    server_ready = {"burst-0": True}  # the pool's DNS-filled slots: one ready
    observed = PoolObservation(
        "burst",
        tuple(replica_observation(r, server_ready, {"burst": True}) for r in replicas),
    )
    assert [r.phase for r in observed.replicas] == ["ready", "draining", "starting"]
    assert (observed.ready, observed.starting, observed.draining) == (1, 1, 1)
    assert observed.running == 3  # what is billed


def test_only_the_deployments_own_pods_are_listed(
    kube_api: FakeKubeApi, driver: KubernetesPoolDriver
):
    private_labels = {**LABELS, "app.kubernetes.io/instance": "private"}
    kube_api.pods += [
        pod("triton-burst-b", LABELS, created="2025-11-11T00:00:09Z"),
        pod("triton-private-a", private_labels),
        pod("triton-burst-a", LABELS),
        pod("triton-burst-c", LABELS, namespace="staging"),
    ]
    # Oldest first, so a log of replicas reads in the order they started.
    assert [replica.name for replica in driver.replicas()] == ["triton-burst-a", "triton-burst-b"]
    (listing,) = kube_api.requested("list_pods")
    assert listing.query["labelSelector"] == [
        "app.kubernetes.io/instance=burst,app.kubernetes.io/name=triton-recommender"
    ]


def test_match_expressions_narrow_the_pods_too(kube_api: FakeKubeApi, kubeconfig: Path):
    kube_api.add_deployment(
        Deployment(
            NAMESPACE,
            "triton-gpu",
            replicas=1,
            match_labels={"app": "triton"},
            match_expressions=[
                {"key": "tier", "operator": "In", "values": ["gpu", "gpu-large"]},
                {"key": "canary", "operator": "DoesNotExist"},
            ],
        )
    )
    kube_api.pods += [
        pod("gpu", {"app": "triton", "tier": "gpu"}),
        pod("gpu-large", {"app": "triton", "tier": "gpu-large"}),
        pod("cpu", {"app": "triton", "tier": "cpu"}),
        pod("canary", {"app": "triton", "tier": "gpu", "canary": "yes"}),
    ]
    driver = KubernetesPoolDriver(_pool(kubeconfig, deployment="triton-gpu"))
    assert sorted(replica.name for replica in driver.replicas()) == ["gpu", "gpu-large"]


def test_an_expiring_exec_credential_is_refreshed_by_the_cached_client(
    kube_api: FakeKubeApi, tmp_path: Path
):
    """EKS tokens (`aws eks get-token`) last 15 minutes; the shared client must fetch a
    new one rather than send the expired one forever."""
    token_file = tmp_path / "token"
    token_file.write_text("test-token")
    plugin = tmp_path / "get_token.py"
    plugin.write_text(
        "import json, pathlib\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1beta1',\n"
        "    'kind': 'ExecCredential', 'status': {\n"
        f"    'token': pathlib.Path({str(token_file)!r}).read_text(),\n"
        "    'expirationTimestamp': '2000-01-01T00:00:00Z'}}))\n"
    )
    exec_user = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "command": sys.executable,
        "args": [str(plugin)],
        "interactiveMode": "Never",
    }
    kubeconfig = tmp_path / "eks-kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "eks", "cluster": {"server": kube_api.url}}],
                "users": [{"name": "eks", "user": {"exec": exec_user}}],
                "contexts": [{"name": "eks", "context": {"cluster": "eks", "user": "eks"}}],
                "current-context": "eks",
            }
        )
    )
    driver = KubernetesPoolDriver(_pool(kubeconfig, context=None))
    driver.scale("burst", 3)
    kube_api.token = "rotated-token"
    token_file.write_text("rotated-token")
    driver.scale("burst", 4)
    assert kube_api.deployments[(NAMESPACE, DEPLOYMENT)].replicas == 4
