"""The gateway chart's TLS to burst pools, as rendered; and the Triton Service without 8002.

What the rendered lines do against real listeners is test_gateway_burst_tls_e2e.py's part.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helm_python import HelmRenderError, HelmValuesError

from spillover.drivers.haproxy_config import check_config
from tests.charts.conftest import RenderChart
from tests.charts.gateway_locally import mounted
from tests.charts.rendering import chart_dir, load_yaml

BURST_VALUES = chart_dir("spillover-gateway") / "ci" / "burst-enabled-values.yaml"
CA_FILE = "/usr/local/etc/haproxy/burst-ca.crt"


def burst_values(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = load_yaml(BURST_VALUES)
    values.update(changes)
    return values


def server_lines(cfg: str, pool_prefix: str) -> list[str]:
    return [
        line.strip()
        for line in cfg.splitlines()
        if line.strip().startswith(f"server-template {pool_prefix}")
    ]


def test_burst_servers_verify_the_ca_and_the_pools_name(render_gateway: RenderChart) -> None:
    files = render_gateway(burst_values()).one("ConfigMap")["data"]
    cfg = files["haproxy.cfg"]
    for pool in burst_values()["pools"]["burst"]:
        name = pool["tlsServerName"]
        lines = server_lines(cfg, f"{pool['name']}-")
        assert len(lines) == 2, "one per backend"
        for line in lines:
            assert f"ssl verify required ca-file {CA_FILE}" in line, line
            assert f"sni str({name}) verifyhost {name} check-sni {name}" in line, line
            assert "ssl-min-ver TLSv1.2" in line, line
        grpc = next(line for line in lines if ":8001 " in line)
        # The gRPC backend checks another port: without check-ssl its checks would be plaintext.
        assert "check port 8000 check-proto h1 check-ssl" in grpc, grpc
    assert files["burst-ca.crt"].strip() == burst_values()["burstTls"]["caCertificate"].strip()


def test_the_private_pool_stays_plain_in_cluster(render_gateway: RenderChart) -> None:
    cfg = render_gateway(burst_values()).one("ConfigMap")["data"]["haproxy.cfg"]
    for line in server_lines(cfg, "private-"):
        assert " ssl " not in line, line


def test_haproxy_accepts_the_tls_config_with_its_ca(
    render_gateway: RenderChart, tmp_path: Path
) -> None:
    files = render_gateway(burst_values()).one("ConfigMap")["data"]
    warnings = check_config(mounted(files, tmp_path))
    assert [w for w in warnings if "can't connect socket for nameserver" not in w] == []


def test_a_ca_change_rolls_the_gateway(render_gateway: RenderChart) -> None:
    def checksum(values: dict[str, Any]) -> str:
        pod = render_gateway(values).one("Deployment")["spec"]["template"]
        annotation: str = pod["metadata"]["annotations"]["checksum/config"]
        return annotation

    other_ca = {**burst_values()["burstTls"], "caCertificate": _other_pem()}
    assert checksum(burst_values()) != checksum(burst_values(burstTls=other_ca))


def _other_pem() -> str:
    pem: str = burst_values()["burstTls"]["caCertificate"]
    return pem.replace("-----END CERTIFICATE-----", "\n-----END CERTIFICATE-----")


def test_a_burst_pool_without_a_ca_is_refused(render_gateway: RenderChart) -> None:
    no_ca = burst_values(burstTls={"enabled": True, "caCertificate": "", "minVersion": "TLSv1.2"})
    with pytest.raises(
        HelmRenderError, match=r"burstTls\.caCertificate: burst pool \"burst_spot\""
    ):
        render_gateway(no_ca)


def test_a_burst_pool_without_its_server_name_is_refused(render_gateway: RenderChart) -> None:
    values = burst_values()
    del values["pools"]["burst"][0]["tlsServerName"]
    with pytest.raises(HelmRenderError, match=r"pools\.burst\[burst_spot\]\.tlsServerName"):
        render_gateway(values)


def test_the_schema_refuses_a_ca_that_is_not_a_certificate(render_gateway: RenderChart) -> None:
    key = {"enabled": True, "caCertificate": "-----BEGIN PRIVATE KEY-----", "minVersion": "TLSv1.2"}
    with pytest.raises(HelmValuesError, match="caCertificate"):
        render_gateway(burst_values(burstTls=key))


def test_plaintext_to_burst_only_when_asked(render_gateway: RenderChart) -> None:
    off = {"enabled": False, "caCertificate": "", "minVersion": "TLSv1.2"}
    cfg = render_gateway(burst_values(burstTls=off)).one("ConfigMap")["data"]["haproxy.cfg"]
    assert all(" ssl " not in line for line in server_lines(cfg, "burst_"))


def test_a_burst_triton_service_carries_the_inference_ports_only(
    render_triton: RenderChart,
) -> None:
    values = load_yaml(chart_dir("triton-recommender") / "ci" / "s3-burst-values.yaml")
    service = render_triton(values).one("Service", "triton-recommender")
    assert [port["port"] for port in service["spec"]["ports"]] == [8000, 8001]
    default = render_triton().one("Service", "triton-recommender")
    assert 8002 in [port["port"] for port in default["spec"]["ports"]], "in-cluster: scraped"


def test_a_service_monitor_without_the_metrics_port_is_refused(
    render_triton: RenderChart,
) -> None:
    values = {"service": {"type": "ClusterIP", "exposeMetrics": False}}
    with pytest.raises(HelmRenderError, match="serviceMonitor.enabled needs service.exposeMetrics"):
        render_triton({**values, "serviceMonitor": {"enabled": True}})
