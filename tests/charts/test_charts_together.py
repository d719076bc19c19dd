"""The three charts, installed with their defaults in namespace spillover (releases named after
the charts), find each other: the names one chart's defaults point at are the names the others
create."""

from __future__ import annotations

import yaml

from tests.charts.conftest import RenderChart
from tests.charts.rendering import NAMESPACE, chart_dir, load_yaml, selects


def test_gateway_discovers_the_private_pool_through_tritons_headless_service(
    render_triton: RenderChart, render_gateway: RenderChart
) -> None:
    headless = render_triton().one("Service", "triton-recommender-headless")["metadata"]
    cfg = render_gateway().one("ConfigMap")["data"]["haproxy.cfg"]
    address = f"{headless['name']}.{headless['namespace']}.svc.cluster.local:8000"
    assert f"server-template private- 8 {address} " in cfg


def test_controller_reaches_the_gateways_runtime_service(
    render_gateway: RenderChart, render_controller: RenderChart
) -> None:
    runtime = render_gateway().one("Service", "spillover-gateway-runtime")
    [port] = runtime["spec"]["ports"]
    config = yaml.safe_load(render_controller().one("ConfigMap")["data"]["spillover.yaml"])
    expected = f"{runtime['metadata']['name']}.{NAMESPACE}.svc.cluster.local:{port['port']}"
    assert config["gateway"]["runtime_api"] == expected


def test_gateway_lets_the_controllers_pods_through_its_network_policy(
    render_gateway: RenderChart, render_controller: RenderChart
) -> None:
    policy = render_gateway().one("NetworkPolicy")
    [runtime_rule] = [rule for rule in policy["spec"]["ingress"] if "from" in rule]
    [peer] = runtime_rule["from"]
    controller_pod = render_controller().one("Deployment")["spec"]["template"]["metadata"]
    assert selects(peer["podSelector"]["matchLabels"], controller_pod["labels"])


def test_controller_scales_the_private_triton_deployment(
    render_triton: RenderChart, render_controller: RenderChart
) -> None:
    triton = render_triton().one("Deployment")["metadata"]
    config = yaml.safe_load(render_controller().one("ConfigMap")["data"]["spillover.yaml"])
    private = next(pool for pool in config["pools"] if pool["role"] == "private")
    assert private["kubernetes"] == {"namespace": triton["namespace"], "deployment": triton["name"]}


def test_burst_releases_are_named_as_the_controller_expects(
    render_triton: RenderChart, render_controller: RenderChart
) -> None:
    config = yaml.safe_load(render_controller().one("ConfigMap")["data"]["spillover.yaml"])
    for pool in (p for p in config["pools"] if p["role"] == "burst"):
        release = pool["kubernetes"]["deployment"]
        deployment = render_triton(release=release).one("Deployment")["metadata"]["name"]
        assert deployment == release


def test_gateway_pool_names_are_the_controllers(
    render_gateway: RenderChart, render_controller: RenderChart
) -> None:
    config = yaml.safe_load(render_controller().one("ConfigMap")["data"]["spillover.yaml"])
    gateway_values = {
        "pools": {
            "burst": [
                {
                    "name": p["name"],
                    "hostname": f"{p['name'].replace('_', '-')}.elb.amazonaws.com",
                    "slots": p["max_replicas"],
                    "weight": 0,
                    "tlsServerName": f"{p['name'].replace('_', '-')}.burst.spillover.internal",
                }
                for p in config["pools"]
                if p["role"] == "burst"
            ]
        },
        # The example CA of the chart's burst CI values: burst pools are reached over TLS.
        "burstTls": load_yaml(chart_dir("spillover-gateway") / "ci" / "burst-enabled-values.yaml")[
            "burstTls"
        ],
    }
    cfg = render_gateway(gateway_values).one("ConfigMap")["data"]["haproxy.cfg"]
    prefixes = {
        line.split()[1][:-1]
        for line in cfg.splitlines()
        if line.strip().startswith("server-template")
    }
    assert prefixes == {pool["name"] for pool in config["pools"]}
