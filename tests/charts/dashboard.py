"""The controller chart's Grafana dashboard and alert rules as PromQL a test can run."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from tests.charts.rendering import chart_dir

FILES = chart_dir("spillover-controller") / "files"
DASHBOARD_FILE = FILES / "dashboard.json"
RULES_FILE = FILES / "alerts.yaml"

# What Grafana puts in place of the dashboard's variables: every job, and a rate window
# that holds a few samples of the tests' 1 s scrapes.
VARIABLES = {"$job": ".*", "$gateway_job": ".*", "$__rate_interval": "15s"}

# A metric selector: a spillover or HAProxy metric name, with its label matchers if any.
SELECTOR = re.compile(r"\b((?:spillover|haproxy)_[a-z0-9_]+)(\{[^}]*\})?")


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text())
    return loaded


def panel_queries() -> dict[str, str]:
    """Each panel query's PromQL, variables filled in, keyed "panel title / refId"."""
    return {
        f"{panel['title']} / {target['refId']}": fill(target["expr"])
        for panel in dashboard()["panels"]
        for target in panel["targets"]
    }


def alert_expressions() -> dict[str, str]:
    groups = yaml.safe_load(RULES_FILE.read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def fill(expr: str) -> str:
    for variable, value in VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def selectors(expr: str) -> list[str]:
    """The metric selectors an expression reads, e.g. 'spillover_mode{mode="safe"}'."""
    return sorted({name + (labels or "") for name, labels in SELECTOR.findall(expr)})
