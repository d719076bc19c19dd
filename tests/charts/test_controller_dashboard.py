"""The controller chart's Grafana dashboard: off by default, the JSON of files/dashboard.json
as it is in a ConfigMap the Grafana sidecar picks up, every panel's query valid PromQL
(promtool parses it as a recording rule). tests/monitoring runs the queries against a real
Prometheus scraping a real controller and gateway."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.charts.conftest import RenderChart
from tests.charts.dashboard import dashboard, panel_queries
from tests.promtool import promtool

# What the issue asks the dashboard to show, each a panel title.
REQUIRED_PANELS = {
    "Demand vs capacity per pool",
    "Traffic weights",
    "Mode",
    "Queue time vs SLO",
    "Gateway latency vs p99 SLO",
    "Spend rate by pool",
    "Spend rate by category",
    "Burst spend this month vs budget",
    "Cost per 1,000 recommendations",
    "Decisions per minute",
}


def test_the_dashboard_is_off_by_default(render_controller: RenderChart) -> None:
    names = [m["metadata"]["name"] for m in render_controller().all("ConfigMap")]
    assert names and not [name for name in names if name.endswith("-dashboard")]


def test_the_dashboard_configmap_carries_the_sidecar_label_and_the_file(
    render_controller: RenderChart,
) -> None:
    rendered = render_controller(
        {
            "grafanaDashboard": {
                "enabled": True,
                "namespace": "monitoring",
                "annotations": {"grafana_folder": "spillover"},
            }
        }
    )
    (configmap,) = [
        m for m in rendered.all("ConfigMap") if m["metadata"]["name"].endswith("-dashboard")
    ]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["namespace"] == "monitoring"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "spillover"}
    assert json.loads(configmap["data"]["spillover.json"]) == dashboard()


def test_the_dashboard_has_the_panels_operators_need_and_each_is_well_formed() -> None:
    panels = dashboard()["panels"]
    assert {panel["title"] for panel in panels} >= REQUIRED_PANELS
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"] and panel["description"], panel["title"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])


def test_every_panel_query_is_valid_promql(tmp_path: Path) -> None:
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{index}", "expr": expr}
                    for index, expr in enumerate(panel_queries().values())
                ],
            }
        ]
    }
    (tmp_path / "queries.yaml").write_text(yaml.safe_dump(rules))
    checked = promtool("check", "rules", str(tmp_path / "queries.yaml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
