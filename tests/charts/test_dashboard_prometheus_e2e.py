"""The dashboard and the alerts against a real Prometheus: Debian's prometheus scrapes a real
local controller and gateway every second while load runs, and every panel query returns
data and every metric an alert reads exists. A query that names a metric the controller or
HAProxy does not export, or a label it does not carry, fails here."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from spillover.drivers.local.layout import GATEWAY_PORT_OFFSETS
from spillover.local.stack import LocalStack
from tests.aws.moto_server import FAKE_CREDENTIALS, moto_server
from tests.charts.dashboard import alert_expressions, panel_queries, selectors
from tests.controller.test_controller_e2e import CONFIG, spillover
from tests.support import PacedLoad, free_port_base

SCRAPE_INTERVAL_S = 1
LOAD_RPS = 30
LOAD_S = 25


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def aws_bill(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A moto server answering Cost Explorer with burst costs, reached through the
    environment the controller inherits, so it compares its ledger with a bill."""
    with moto_server() as server:
        for name, value in {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": server.url}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        server.queue_cost_and_usage(
            {
                "ResultsByTime": [
                    {
                        "Groups": [
                            {
                                "Keys": ["spillover:pool$burst"],
                                "Metrics": {"UnblendedCost": {"Amount": "2.5", "Unit": "USD"}},
                            }
                        ]
                    }
                ]
            }
        )
        yield


@pytest.fixture
def scraped_stack(tmp_path: Path, model_repo: Path, aws_bill: None) -> Iterator[str]:
    """A local stack with its controller, scraped by a real Prometheus; yields its URL."""
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    assert Path(binary).exists(), "prometheus missing: run scripts/install-system-deps.sh"
    controller_port, prometheus_port, port_base = free_port(), free_port(), free_port_base()
    config = {
        **CONFIG,
        "controller": {"metrics_port": controller_port, "reconcile_every_hours": 24},
        "budget": {"max_burst_usd_per_hour": 5, "monthly_cap_usd": 300},
    }
    (tmp_path / "spillover.yaml").write_text(yaml.safe_dump(config))
    gateway_metrics = port_base + GATEWAY_PORT_OFFSETS["metrics"]
    scrape = {
        "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": "spillover", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
            for port in [controller_port]
        ] + [
            {"job_name": "gateway", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
            for port in [gateway_metrics]
        ],
    }  # fmt: skip
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(scrape))
    run_dir = tmp_path / "run"
    prometheus = None
    try:
        spillover(
            run_dir,
            "local", "--run-dir", str(run_dir), "up", "--config", str(tmp_path / "spillover.yaml"),
            "--port-base", str(port_base), "--model-repo", str(model_repo),
            timeout=240,
        )  # fmt: skip
        prometheus = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prometheus_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / "prometheus.log", "wb"),  # noqa: SIM115
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{prometheus_port}"
        wait_ready(url, prometheus)
        # Above private's capacity, so burst starts, serves and is charged.
        load = PacedLoad(f"127.0.0.1:{port_base}")
        load.run(rate=LOAD_RPS * 2, until=lambda: False, max_seconds=LOAD_S)
        yield url
    finally:
        if prometheus is not None:
            os.killpg(prometheus.pid, signal.SIGTERM)
            prometheus.wait(timeout=30)
        LocalStack(run_dir).down()


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "prometheus exited; see prometheus.log"
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError("prometheus not ready within 30 s")


def query(url: str, expr: str) -> list[dict]:
    """The expression over the last minute at the scrape interval, as a dashboard graph
    asks for it: a series that had data while the load ran counts, even if it is gone now
    (a pool's measured capacity, say, once the pool is idle)."""
    now = time.time()
    window = {"query": expr, "start": now - 60, "end": now, "step": SCRAPE_INTERVAL_S}
    address = f"{url}/api/v1/query_range?" + urllib.parse.urlencode(window)
    with urllib.request.urlopen(address, timeout=10) as answer:
        body = json.loads(answer.read())
    assert body["status"] == "success", (expr, body)
    result: list[dict] = body["data"]["result"]
    return result


def test_every_panel_and_every_alert_reads_metrics_that_exist(scraped_stack: str) -> None:
    targets = query(scraped_stack, "up")
    assert {t["metric"]["job"]: t["values"][-1][1] for t in targets} == {
        "spillover": "1",
        "gateway": "1",
    }
    empty_panels = [
        name for name, expr in panel_queries().items() if not query(scraped_stack, expr)
    ]
    assert not empty_panels, f"panel queries without data: {empty_panels}"
    missing = {
        alert: [s for s in selectors(expr) if not query(scraped_stack, s)]
        for alert, expr in alert_expressions().items()
    }
    assert not {alert: s for alert, s in missing.items() if s}, (
        "alerts read metrics that do not exist"
    )
    # Each alert's expression is evaluated too (its result may be empty: nothing is wrong).
    for expr in alert_expressions().values():
        query(scraped_stack, expr)
