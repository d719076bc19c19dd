"""A controller config for the fake API server: two kubernetes pools and controller.cluster.

The pods have no IP (nothing to scrape) and the gateway socket does not exist, so the
policy holds in safe mode and re-applies every pool's size each tick: each tick of an
acting controller reads its pools' scale subresources (``get_scale``), which is how a
test sees who acts. Each process has its own token, so the fake tells them apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.drivers.fake_kube_api import Deployment, FakeKubeApi, pod
from tests.drivers.kubeconfigs import write_kubeconfig

NAMESPACE = "spillover"
POOLS = {"private": ("triton-private", 2, 0.5), "burst": ("triton-burst", 1, 1.25)}
"""pool -> (deployment, running pods, $ per replica-hour)."""


def add_pools(api: FakeKubeApi) -> None:
    for deployment, running, _ in POOLS.values():
        labels = {"app": deployment}
        api.add_deployment(Deployment(NAMESPACE, deployment, running, labels))
        for index in range(running):
            api.pods.append(pod(f"{deployment}-{index}", labels, namespace=NAMESPACE, pod_ip=None))


def controller_config(
    tmp_path: Path,
    api: FakeKubeApi,
    identity: str,
    *,
    database: Path,
    metrics_port: int = 0,
    lease: tuple[int, float, float] = (3, 2.0, 0.5),
    status_every_ticks: int = 2,
) -> Path:
    """Write the config (and kubeconfig) of one controller process; identity is its
    token too."""
    kubeconfig = write_kubeconfig(tmp_path / f"kubeconfig-{identity}", api.url, identity)
    pools: list[dict[str, Any]] = [
        {
            "name": name,
            "role": name,
            "driver": "kubernetes",
            "capacity_type": "owned" if name == "private" else "on-demand",
            "min_replicas": running,
            "max_replicas": 4,
            "cold_start_seconds": 1,
            "capacity_rps": 100,
            "kubernetes": {
                "namespace": NAMESPACE,
                "deployment": deployment,
                "kubeconfig": str(kubeconfig),
            },
            "price": {"usd_per_replica_hour": price, "source": "test"},
        }
        for name, (deployment, running, price) in POOLS.items()
    ]
    duration, renew, retry = lease
    document = {
        "pools": pools,
        "policy": {"tick_seconds": 0.5, "stale_after_seconds": 2},
        "gateway": {"runtime_api": str(tmp_path / "no-gateway.sock")},
        "controller": {
            "database": str(database),
            "ledger_window_seconds": 2,
            "metrics_port": metrics_port,
            "cluster": {
                "namespace": NAMESPACE,
                "kubeconfig": str(kubeconfig),
                "status_every_ticks": status_every_ticks,
                "leader_election": {
                    "identity": identity,
                    "lease_duration_seconds": duration,
                    "renew_deadline_seconds": renew,
                    "retry_period_seconds": retry,
                },
            },
        },
    }
    path = tmp_path / f"spillover-{identity}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path
