"""The controller chart's PrometheusRule: off by default, the rules of files/alerts.yaml as
they are, valid for promtool, and each alert unit-tested (fires when it should, not when it
shouldn't) by the promtool test file named after it in tests/charts/alerts/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.charts.conftest import RenderChart
from tests.charts.rendering import chart_dir
from tests.promtool import promtool

RULES_FILE = chart_dir("spillover-controller") / "files" / "alerts.yaml"
ALERT_TESTS = Path(__file__).parent / "alerts"


def alert_names() -> list[str]:
    groups = yaml.safe_load(RULES_FILE.read_text())["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule]


def rendered_rules(render_controller: RenderChart) -> dict[str, Any]:
    rendered = render_controller(
        {"prometheusRule": {"enabled": True, "labels": {"release": "kps"}}}
    )
    rule = rendered.one("PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kps"
    spec: dict[str, Any] = rule["spec"]
    return spec


def test_the_prometheus_rule_is_off_by_default(render_controller: RenderChart) -> None:
    assert "PrometheusRule" not in render_controller().kinds()


def test_the_rendered_rules_are_the_rules_file_and_promtool_accepts_them(
    render_controller: RenderChart, tmp_path: Path
) -> None:
    spec = rendered_rules(render_controller)
    assert spec == yaml.safe_load(RULES_FILE.read_text())
    (tmp_path / "alerts.yaml").write_text(yaml.safe_dump(spec))
    checked = promtool("check", "rules", str(tmp_path / "alerts.yaml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alert_names())} rules found" in checked.stdout


def test_every_alert_has_a_unit_test_file_and_every_test_file_an_alert() -> None:
    tested = {path.stem for path in ALERT_TESTS.glob("*.yaml")}
    assert tested == set(alert_names())


@pytest.mark.parametrize("alert", alert_names())
def test_the_alert_fires_when_it_should_and_not_when_it_should_not(
    render_controller: RenderChart, tmp_path: Path, alert: str
) -> None:
    spec = rendered_rules(render_controller)
    # promtool compares annotations exactly; `check rules` has already parsed their templates,
    # so the unit tests judge when an alert fires and with which labels.
    for group in spec["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "alerts.yaml").write_text(yaml.safe_dump(spec))
    test_file = tmp_path / f"{alert}.yaml"
    test_file.write_text((ALERT_TESTS / f"{alert}.yaml").read_text())
    tests = yaml.safe_load(test_file.read_text())["tests"]
    checks = [check for t in tests for check in t["alert_rule_test"]]
    assert {check["alertname"] for check in checks} == {alert}
    assert [c for c in checks if c["exp_alerts"]], f"{alert}: no case where it fires"
    assert [c for c in checks if not c["exp_alerts"]], f"{alert}: no case where it stays quiet"
    result = promtool("test", "rules", test_file.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
