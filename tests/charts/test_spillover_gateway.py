"""The gateway chart: an haproxy.cfg that HAProxy accepts and that does what the local gateway
does (DNS-filled <pool>-<index> servers, live weights, health checks, retries), a runtime API
that only the controller can reach, and the values it refuses."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_python import HelmRenderError, HelmValuesError

from spillover.drivers.haproxy_config import (
    HaproxyNotFoundError,
    check_config,
    find_haproxy,
    render_config,
    unavailable_rule,
)
from spillover.drivers.haproxy_exposure import grpc_rules, http_rules
from spillover.drivers.haproxy_spec import pool_of_server
from spillover.model.contract import MODEL_NAME
from tests.charts.conftest import RenderChart
from tests.charts.gateway_locally import mounted
from tests.charts.rendering import Rendered, chart_dir, ci_values_files, container, load_yaml
from tests.drivers.gateway_harness import make_spec, unused_slot
from tests.support import load_script

CI = chart_dir("spillover-gateway") / "ci"
PRIVATE_ADDRESS = "triton-recommender-headless.spillover.svc.cluster.local"
SPOT_NLB = "k8s-spillove-tritonsp-5d2c8e1f4a-3b9a7c1d2e4f5a6b.elb.us-east-1.amazonaws.com"
TEMPLATE = re.compile(
    r"^\s*server-template (?P<prefix>\S+) (?P<count>\d+) (?P<address>\S+)(?P<rest>.*)$"
)


def _ci(name: str) -> dict[str, Any]:
    values: dict[str, Any] = load_yaml(CI / name)
    return values


def _haproxy_cfg(rendered: Rendered) -> str:
    text: str = rendered.one("ConfigMap")["data"]["haproxy.cfg"]
    return text


def _section(cfg: str, header: str) -> list[str]:
    """The lines of one section (``backend triton_http``, ``frontend metrics``), its header out."""
    section = cfg.split(f"\n{header}\n", 1)[1]
    return section.split("\n\n", 1)[0].splitlines()


def _backend(cfg: str, name: str) -> list[str]:
    return _section(cfg, f"backend {name}")


def _templates(cfg: str, backend: str) -> list[dict[str, str]]:
    lines = _backend(cfg, backend)
    return [match.groupdict() for line in lines if (match := TEMPLATE.match(line))]


def test_servers_come_from_dns_named_pool_dash_index(render_gateway: RenderChart) -> None:
    cfg = _haproxy_cfg(render_gateway(_ci("burst-enabled-values.yaml")))
    for backend, port in (("triton_http", 8000), ("triton_grpc", 8001)):
        templates = _templates(cfg, backend)
        assert [(t["prefix"], t["count"], t["address"]) for t in templates] == [
            ("private-", "8", f"{PRIVATE_ADDRESS}:{port}"),
            ("burst_spot-", "3", f"{SPOT_NLB}:{port}"),
            (
                "burst_ondemand-",
                "3",
                "k8s-spillove-tritonod-8f1e2d3c4b-7a6b5c4d3e2f1a0b.elb.us-east-1.amazonaws.com"
                f":{port}",
            ),
        ]
        for template in templates:
            # HAProxy names the servers <prefix>1..<prefix><count>; the controller parses them.
            names = [f"{template['prefix']}{i}" for i in range(1, int(template["count"]) + 1)]
            assert {pool_of_server(name) for name in names} == {template["prefix"][:-1]}


def test_weights_start_private_100_and_burst_0(render_gateway: RenderChart) -> None:
    cfg = _haproxy_cfg(render_gateway(_ci("burst-enabled-values.yaml")))
    for backend in ("triton_http", "triton_grpc"):
        weights = {
            t["prefix"][:-1]: t["rest"].split(" weight ")[1].split()[0]
            for t in _templates(cfg, backend)
        }
        assert weights == {"private": "100", "burst_spot": "0", "burst_ondemand": "0"}


def test_only_the_private_pool_by_default(render_gateway: RenderChart) -> None:
    cfg = _haproxy_cfg(render_gateway())
    assert [t["prefix"] for t in _templates(cfg, "triton_http")] == ["private-"]


def test_servers_resolve_through_cluster_dns_and_start_empty(render_gateway: RenderChart) -> None:
    cfg = _haproxy_cfg(render_gateway())
    assert "resolvers kubedns\n    parse-resolv-conf\n" in cfg
    for backend in ("triton_http", "triton_grpc"):
        [defaults] = [line for line in _backend(cfg, backend) if "default-server" in line]
        assert "resolvers kubedns" in defaults
        assert "init-addr none" in defaults


def test_health_checks_and_retries_mirror_the_local_gateway(render_gateway: RenderChart) -> None:
    cfg = _haproxy_cfg(render_gateway())
    for backend in ("triton_http", "triton_grpc"):
        lines = _backend(cfg, backend)
        assert "    option httpchk GET /v2/health/ready" in lines
        assert "    http-check expect status 200" in lines
        [defaults] = [line for line in lines if "default-server" in line]
        assert "check inter 500ms" in defaults
        assert "observe layer4 error-limit 1 on-error mark-down" in defaults
    for setting in (
        "    retries 6",
        "    option redispatch 1",
        "    option http-buffer-request",
        "    retry-on conn-failure empty-response junk-response response-timeout",
    ):
        assert setting in cfg.splitlines()


def test_grpc_backend_speaks_h2_and_checks_the_http_port(render_gateway: RenderChart) -> None:
    cfg = _haproxy_cfg(render_gateway())
    assert "    bind :8001 proto h2" in cfg.splitlines()
    [template] = _templates(cfg, "triton_grpc")
    assert "proto h2 check port 8000 check-proto h1" in template["rest"]


def test_runtime_api_on_9999_and_prometheus_exporter(render_gateway: RenderChart) -> None:
    cfg = _haproxy_cfg(render_gateway())
    assert "    stats socket ipv4@0.0.0.0:9999 level admin" in cfg.splitlines()
    assert "http-request use-service prometheus-exporter if { path /metrics }" in cfg


@pytest.mark.parametrize(
    "values_file",
    [pytest.param(path, id=path.name) for path in ci_values_files("spillover-gateway")],
)
def test_haproxy_accepts_the_rendered_config(
    render_gateway: RenderChart, values_file: Any, tmp_path: Path
) -> None:
    try:
        find_haproxy()
    except HaproxyNotFoundError:
        pytest.skip("haproxy is not installed (apt-get install haproxy)")
    files = render_gateway(load_yaml(values_file)).one("ConfigMap")["data"]
    # With its files (the burst pools' CA) where the pod would find them.
    warnings = check_config(mounted(files, tmp_path))
    # parse-resolv-conf reads this machine's resolv.conf; whether its nameserver is reachable
    # from here says nothing about the config.
    assert [w for w in warnings if "can't connect socket for nameserver" not in w] == []


def test_runtime_service_is_cluster_internal_with_a_port_named_runtime(
    render_gateway: RenderChart,
) -> None:
    rendered = render_gateway(_ci("burst-enabled-values.yaml"))
    runtime = rendered.one("Service", "spillover-gateway-runtime")
    assert runtime["spec"]["type"] == "ClusterIP"
    assert runtime["spec"]["ports"] == [
        {"name": "runtime", "port": 9999, "targetPort": "runtime", "protocol": "TCP"}
    ]
    gateway = container(rendered.one("Deployment"))
    assert {"name": "runtime", "containerPort": 9999, "protocol": "TCP"} in gateway["ports"]
    exposed = rendered.one("Service", "spillover-gateway")
    assert exposed["spec"]["type"] == "LoadBalancer"
    assert {p["name"] for p in exposed["spec"]["ports"]} == {"http", "grpc"}
    metrics = rendered.one("Service", "spillover-gateway-metrics")
    assert metrics["spec"]["type"] == "ClusterIP"


def test_network_policy_lets_only_the_controller_reach_the_runtime_api(
    render_gateway: RenderChart,
) -> None:
    policy = render_gateway().one("NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    rules = policy["spec"]["ingress"]
    runtime_rules = [r for r in rules if {"port": "runtime", "protocol": "TCP"} in r["ports"]]
    assert len(runtime_rules) == 1
    [runtime_rule] = runtime_rules
    assert runtime_rule["ports"] == [{"port": "runtime", "protocol": "TCP"}]
    assert runtime_rule["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "spillover-controller"}}}
    ]
    open_rules = [r for r in rules if "from" not in r]
    assert {p["port"] for r in open_rules for p in r["ports"]} == {"http", "grpc", "metrics"}


def test_network_policy_admits_a_controller_in_another_namespace(
    render_gateway: RenderChart,
) -> None:
    policy = render_gateway(_ci("tuned-servicemonitor-values.yaml")).one("NetworkPolicy")
    [runtime_rule] = [r for r in policy["spec"]["ingress"] if "from" in r]
    assert runtime_rule["from"] == [
        {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "spillover-controller"}},
            "namespaceSelector": {
                "matchLabels": {"kubernetes.io/metadata.name": "spillover-system"}
            },
        }
    ]


def test_network_policy_can_be_turned_off(render_gateway: RenderChart) -> None:
    rendered = render_gateway({"networkPolicy": {"enabled": False}})
    assert "NetworkPolicy" not in rendered.kinds()
    assert "WARNING: networkPolicy.enabled is false" in rendered.notes


def test_a_new_config_rolls_the_gateway(render_gateway: RenderChart) -> None:
    def checksum(values: dict[str, Any]) -> str:
        pod = render_gateway(values).one("Deployment")["spec"]["template"]
        return str(pod["metadata"]["annotations"]["checksum/config"])

    assert checksum({}) != checksum({"haproxy": {"retries": 2}})
    assert checksum({}) == checksum({"podLabels": {"team": "ml-platform"}})


def test_haproxy_reads_the_mounted_config(render_gateway: RenderChart) -> None:
    rendered = render_gateway()
    haproxy = container(rendered.one("Deployment"))
    assert haproxy["command"] + haproxy["args"] == [
        "haproxy",
        "-W",
        "-db",
        "-f",
        "/usr/local/etc/haproxy/haproxy.cfg",
    ]
    mount = next(m for m in haproxy["volumeMounts"] if m["name"] == "config")
    assert mount["mountPath"] == "/usr/local/etc/haproxy"
    assert haproxy["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert "    monitor-uri /healthz" in _haproxy_cfg(rendered).splitlines()


def test_service_monitor_scrapes_the_metrics_service(render_gateway: RenderChart) -> None:
    assert "ServiceMonitor" not in render_gateway().kinds()
    rendered = render_gateway(_ci("tuned-servicemonitor-values.yaml"))
    monitor = rendered.one("ServiceMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    scraped = [
        s["metadata"]["name"]
        for s in rendered.all("Service")
        if all(s["metadata"]["labels"].get(k) == v for k, v in selector.items())
    ]
    assert scraped == ["spillover-gateway-metrics"]
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"


def test_tuning_reaches_the_config(render_gateway: RenderChart) -> None:
    cfg = _haproxy_cfg(render_gateway(_ci("tuned-servicemonitor-values.yaml")))
    lines = cfg.splitlines()
    assert "    nbthread 4" in lines
    assert "    maxconn 20000" in lines
    assert "    timeout connect 500ms" in lines
    assert "    hold valid 2s" in lines
    [template] = _templates(cfg, "triton_http")
    assert (template["count"], template["address"]) == (
        "32",
        "triton-recommender-headless.inference.svc.cluster.local:8000",
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param(
            {"replicaCount": 2}, "at '/replicaCount': maximum: got 2, want 1", id="two-gateways"
        ),
        pytest.param(
            {"replicaCount": -1}, "at '/replicaCount': minimum: got -1, want 0", id="negative"
        ),
        pytest.param(
            {"pools": {"private": {"name": "Private-Pool"}}},
            "at '/pools/private/name'",
            id="pool-name-not-controller-style",
        ),
        pytest.param(
            {"pools": {"burst": [{"name": "burst", "hostname": "nlb.example", "slots": 2}]}},
            "at '/pools/burst/0': missing property 'weight'",
            id="burst-without-weight",
        ),
        pytest.param(
            {"pools": {"burst": [{"name": "b", "hostname": "h", "slots": 2, "weight": 300}]}},
            "at '/pools/burst/0/weight': maximum: got 300, want 256",
            id="weight-out-of-range",
        ),
        pytest.param(
            {"haproxy": {"healthCheck": {"inter": 500}}},
            "at '/haproxy/healthCheck': additional properties 'inter' not allowed",
            id="unknown-key",
        ),
        pytest.param(
            {"haproxy": {"retryOn": ["conn-failures"]}},
            "at '/haproxy/retryOn/0': value must be one of",
            id="unknown-retry-class",
        ),
    ],
)
def test_schema_refuses_bad_values_naming_the_key(
    render_gateway: RenderChart, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(HelmValuesError) as refused:
        render_gateway(values)
    assert message in str(refused.value)


def test_a_pool_name_used_twice_is_refused(render_gateway: RenderChart) -> None:
    twice = {"pools": {"burst": [{"name": "private", "hostname": "h", "slots": 2, "weight": 0}]}}
    with pytest.raises(HelmRenderError, match='the name "private" is used twice'):
        render_gateway(twice)


def test_notes_give_the_controller_its_runtime_address(render_gateway: RenderChart) -> None:
    notes = render_gateway().notes
    snippet = notes.split("The controller's config takes the runtime API as:")[1].split("\n\n")[1]
    runtime = yaml.safe_load(snippet)
    assert runtime == {
        "gateway": {"runtime_api": "spillover-gateway-runtime.spillover.svc.cluster.local:9999"}
    }


# --- only inference is exposed ------------------------------------------------------------

TRAFFIC_FRONTENDS = {
    "triton_http_in": http_rules(MODEL_NAME),
    "triton_grpc_in": grpc_rules(MODEL_NAME),
}
"""Each traffic frontend and the allow-list rules it must carry, from the one Python definition."""


def _rules(section: list[str]) -> list[str]:
    """A frontend's access rules, in order: its acl and http-request lines."""
    return [line.strip() for line in section if line.strip().startswith(("acl ", "http-request "))]


def test_allow_list_files_are_what_the_sync_script_writes() -> None:
    script = load_script("sync-gateway-allowlist.py")
    for path, text in script.wanted_files().items():
        assert path.read_text() == text, (
            f"{path.name} is out of sync with spillover/drivers/haproxy_exposure.py: "
            "run `.venv/bin/python scripts/sync-gateway-allowlist.py`"
        )


@pytest.mark.parametrize(
    "values_file",
    [pytest.param(path, id=path.name) for path in ci_values_files("spillover-gateway")],
)
def test_traffic_frontends_carry_the_local_gateways_allow_list(
    render_gateway: RenderChart, values_file: Any
) -> None:
    chart_cfg = _haproxy_cfg(render_gateway(load_yaml(values_file)))
    local_cfg = render_config(make_spec(Path("/tmp/spillover-test"), [unused_slot("private-0")]))
    for frontend, rules in TRAFFIC_FRONTENDS.items():
        chart_rules = _rules(_section(chart_cfg, f"frontend {frontend}"))
        assert chart_rules == rules
        assert chart_rules == _rules(_section(local_cfg, f"frontend {frontend}"))


def test_stats_page_listens_on_loopback_only(render_gateway: RenderChart) -> None:
    cfg = _haproxy_cfg(render_gateway())
    frontends = {
        line.removeprefix("frontend "): _section(cfg, line)
        for line in cfg.splitlines()
        if line.startswith("frontend ")
    }
    with_stats = {name for name, lines in frontends.items() if "    stats enable" in lines}
    assert with_stats == {"stats"}
    assert [line for line in frontends["stats"] if "bind" in line] == ["    bind 127.0.0.1:8404"]


def test_an_overloaded_pool_is_refused_as_the_local_gateway_refuses_it(
    render_gateway: RenderChart,
) -> None:
    """The chart's backends answer a request no replica could take as the local gateway does
    (503 + Retry-After, gRPC UNAVAILABLE), and cap each replica at its pool's maxconnPerServer."""
    cfg = _haproxy_cfg(render_gateway(_ci("burst-enabled-values.yaml")))
    for backend, grpc in (("triton_http", False), ("triton_grpc", True)):
        assert f"    {unavailable_rule(grpc, 1)}" in _backend(cfg, backend)
        maxconn = {
            t["prefix"][:-1]: t["rest"].split(" maxconn ")[1] if " maxconn " in t["rest"] else None
            for t in _templates(cfg, backend)
        }
        assert maxconn == {"private": "60", "burst_spot": "40", "burst_ondemand": None}
    assert "    timeout queue 1000ms" in cfg.splitlines()
    retry_after_5 = _haproxy_cfg(render_gateway({"haproxy": {"retryAfterSeconds": 5}}))
    assert f"    {unavailable_rule(True, 5)}" in retry_after_5.splitlines()
