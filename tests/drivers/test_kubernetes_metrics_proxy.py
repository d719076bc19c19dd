"""A burst pool's per-pod metrics read through the API server's pod proxy, and the
direct pod-IP path kept for pools the controller can route to."""

from __future__ import annotations

from pathlib import Path

from spillover.config import MetricsPath
from spillover.controller import scraping
from spillover.drivers.kubernetes import KubernetesPoolDriver
from spillover.settings import DEFAULTS
from tests.drivers.fake_kube_api import FakeKubeApi, pod
from tests.drivers.test_kubernetes import LABELS, NAMESPACE, _pool, kube_api, kubeconfig  # noqa: F401


def _queue_text(queue_us: int) -> str:
    return f'nv_inference_queue_duration_us{{model="recommender",version="1"}} {queue_us}\n'


def _driver(kubeconfig_path: Path, via: str) -> KubernetesPoolDriver:
    config = _pool(kubeconfig_path)
    assert config.kubernetes is not None
    target = config.kubernetes.model_copy(update={"metrics": MetricsPath(via=via)})  # type: ignore[arg-type]
    return KubernetesPoolDriver(config.model_copy(update={"kubernetes": target}))


def test_each_pod_is_read_through_its_own_pod_proxy(kube_api: FakeKubeApi, kubeconfig: Path):  # noqa: F811
    kube_api.pods += [
        pod("triton-a", LABELS, pod_ip="10.0.3.7"),
        pod("triton-b", LABELS, pod_ip="10.0.3.8"),
    ]
    kube_api.pod_metrics[(NAMESPACE, "triton-a", 8002)] = _queue_text(111)
    kube_api.pod_metrics[(NAMESPACE, "triton-b", 8002)] = _queue_text(222)
    replicas = _driver(kubeconfig, "apiserver-proxy").replicas()

    def unreachable(url: str, timeout_s: float) -> str:
        raise AssertionError(f"direct fetch of {url}: pod IPs are unreachable across sites")

    answers = scraping.scrape_all(replicas, unreachable, DEFAULTS.observe, lambda: 0.0)
    assert {name: a.text for name, a in answers.items()} == {
        "triton-a": _queue_text(111),
        "triton-b": _queue_text(222),
    }
    assert all("10.0.3" not in r.metrics_url for r in replicas)


def test_direct_still_reads_the_pod_ip(kube_api: FakeKubeApi, kubeconfig: Path):  # noqa: F811
    kube_api.pods.append(pod("triton-a", LABELS, pod_ip="10.0.3.7"))
    [replica] = _driver(kubeconfig, "direct").replicas()
    assert replica.metrics_url == "http://10.0.3.7:8002/metrics"
    assert replica.read_metrics is None
    assert not kube_api.requested("get_pod_proxy")
