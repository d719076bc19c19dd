"""The controller chart's values.schema.json carries spillover.yaml's one schema, unaltered."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

from spillover.config import SpilloverConfig
from tests.charts.rendering import CHARTS_DIR
from tests.support import load_script

SCHEMA_FILE = CHARTS_DIR / "spillover-controller" / "values.schema.json"


def _sync_script() -> ModuleType:
    return load_script("sync-chart-schema.py")


def test_committed_schema_is_in_sync_with_spillover_config() -> None:
    committed = SCHEMA_FILE.read_text()
    assert committed == _sync_script().render(committed), (
        "charts/spillover-controller/values.schema.json is out of sync with spillover/config.py "
        "or was edited without re-rendering: run `.venv/bin/python scripts/sync-chart-schema.py`"
    )


def test_embedded_config_schema_is_pydantics_schema() -> None:
    """Independent of the script: resolve every $ref on both sides and compare."""
    chart = json.loads(SCHEMA_FILE.read_text())
    embedded = _inline(chart["properties"]["config"], chart)
    model = SpilloverConfig.model_json_schema()
    assert embedded == _inline(model, model)


def _inline(node: Any, root: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            *_, section, name = node["$ref"].split("/")
            target = _inline(root[section][name], root)
            return {**target, **_inline({k: v for k, v in node.items() if k != "$ref"}, root)}
        return {key: _inline(value, root) for key, value in node.items() if key != "$defs"}
    if isinstance(node, list):
        return [_inline(item, root) for item in node]
    return node
