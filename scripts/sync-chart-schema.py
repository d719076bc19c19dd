"""Write the spillover-controller chart's values.schema.json from spillover.yaml's one schema.

The chart's `config` value becomes the controller's spillover.yaml, so Helm must check it
against the schema pydantic derives from `spillover.config.SpilloverConfig`, not a copy kept by
hand. This script embeds that schema under `properties.config`, hoists its `$defs` into the
file's top-level `definitions` as `spillover.<Name>` and rewrites each `$ref` to match (draft-07
`definitions`, which every Helm 3 and Helm 4 validator resolves). Everything else in the file is
the chart's own values schema, edited by hand; run this script after editing either side.

    .venv/bin/python scripts/sync-chart-schema.py          # rewrite the file
    .venv/bin/python scripts/sync-chart-schema.py --check  # exit 1 when it is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from spillover.config import SpilloverConfig

ROOT = Path(__file__).resolve().parents[1]
CHART_SCHEMA = ROOT / "charts" / "spillover-controller" / "values.schema.json"
DEFINITION_PREFIX = "spillover."
"""Marks the definitions this script owns; the chart's own definitions never start with it."""

_PYDANTIC_REF = "#/$defs/"


def config_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """spillover.yaml's schema without its $defs, and those $defs, refs rewritten for the chart."""
    schema = SpilloverConfig.model_json_schema()
    defs = schema.pop("$defs", {})
    renamed = {DEFINITION_PREFIX + name: _rewrite_refs(body) for name, body in defs.items()}
    return _rewrite_refs(schema), dict(sorted(renamed.items()))


def synced(chart_schema: dict[str, Any]) -> dict[str, Any]:
    """``chart_schema`` with its config part replaced by the current one; the rest untouched."""
    config, config_definitions = config_schema()
    own_definitions = {
        name: body
        for name, body in chart_schema.get("definitions", {}).items()
        if not name.startswith(DEFINITION_PREFIX)
    }
    result = dict(chart_schema)
    result["definitions"] = own_definitions | config_definitions
    properties = dict(chart_schema.get("properties", {}))
    properties["config"] = config
    result["properties"] = properties
    return result


def render(current_text: str) -> str:
    """The file's text as this script writes it, given its current text."""
    return json.dumps(synced(json.loads(current_text)), indent=2, ensure_ascii=False) + "\n"


def _rewrite_refs(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: (
                value.replace(_PYDANTIC_REF, "#/definitions/" + DEFINITION_PREFIX, 1)
                if key == "$ref" and isinstance(value, str)
                else _rewrite_refs(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(item) for item in node]
    return node


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="only report whether the file is up to date"
    )
    args = parser.parse_args(argv)
    current = CHART_SCHEMA.read_text()
    wanted = render(current)
    if current == wanted:
        print(f"{CHART_SCHEMA.relative_to(ROOT)} is up to date")
        return 0
    if args.check:
        print(
            f"{CHART_SCHEMA.relative_to(ROOT)} is out of date: run scripts/sync-chart-schema.py",
            file=sys.stderr,
        )
        return 1
    CHART_SCHEMA.write_text(wanted)
    print(f"wrote {CHART_SCHEMA.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
