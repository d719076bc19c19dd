"""The Spillover CRD: a structural schema, the printer columns the issue asks for, and a
status the controller writes that the schema accepts.

The API server's own checks (it refuses a non-structural v1 CRD; it prunes and
validates status; it computes the printer columns) run only against a real one: see
tests/real_cluster/. Here the rules are encoded (tests/charts/structural.py) and each
is shown to catch a broken copy.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from spillover.controller.status_resource import CONDITION_TYPES, Extras, status_body
from tests.charts.rendering import chart_dir, kube_version_floor, load_yaml
from tests.charts.structural import violations

CRD = chart_dir("spillover-controller") / "crds" / "spillovers.spillover.io.yaml"


def _crd() -> dict[str, Any]:
    crd: dict[str, Any] = load_yaml(CRD)
    return crd


def _version(crd: dict[str, Any]) -> dict[str, Any]:
    [version] = crd["spec"]["versions"]
    return dict(version)


def _schema(crd: dict[str, Any]) -> dict[str, Any]:
    return dict(_version(crd)["schema"]["openAPIV3Schema"])


def test_the_crd_is_a_valid_v1_namespaced_crd_with_a_status_subresource() -> None:
    crd = _crd()
    for version in (
        kube_version_floor("spillover-controller"),
        kubernetes_validate.latest_version(),
    ):
        kubernetes_validate.validate(crd, version, strict=True)
    assert crd["metadata"]["name"] == "spillovers.spillover.io"
    assert crd["spec"]["scope"] == "Namespaced"
    version = _version(crd)
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}


def test_the_schema_is_structural() -> None:
    assert violations(_schema(_crd())) == []


def _status(schema: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = schema["properties"]["status"]["properties"]
    return properties


def _broken(edit: Any) -> list[str]:
    schema = copy.deepcopy(_schema(_crd()))
    edit(schema)
    return violations(schema)


@pytest.mark.parametrize(
    ("edit", "rule"),
    [
        pytest.param(lambda s: s["properties"]["status"]["properties"]["mode"].pop("type"),
                     "mode: no type", id="untyped-field"),
        pytest.param(lambda s: _status(s)["pools"]["items"].pop("type"),
                     "pools.items: no type", id="untyped-items"),
        pytest.param(lambda s: s["properties"]["status"].update(
            anyOf=[{"properties": {"surprise": {}}}]), "not specified outside", id="junctor-field"),
        pytest.param(lambda s: s["properties"]["status"].update(
            anyOf=[{"type": "object"}]), "type inside a junctor", id="junctor-type"),
        pytest.param(lambda s: s["properties"]["metadata"].update(
            properties={"labels": {"type": "object"}}), "only name and generateName",
            id="metadata-restricted"),
        pytest.param(lambda s: s["properties"]["status"].update(additionalProperties=False),
                     "additionalProperties", id="closed-object"),
        pytest.param(lambda s: s["properties"]["status"].update({"$ref": "#/x"}),
                     "$ref is forbidden", id="ref"),
        pytest.param(lambda s: s["properties"]["status"]["properties"]["conditions"]["items"]
                     ["required"].remove("type"), "must be required", id="map-key-optional"),
    ],
)  # fmt: skip
def test_each_structural_rule_catches_a_broken_schema(edit: Any, rule: str) -> None:
    found = _broken(edit)
    assert any(rule in problem for problem in found), found


def test_printer_columns_are_the_ones_kubectl_get_shows() -> None:
    columns = _version(_crd())["additionalPrinterColumns"]
    default = [c["name"] for c in columns if c.get("priority", 0) == 0]
    assert default == ["MODE", "DEMAND", "PRIVATE", "BURST", "$/H", "TODAY", "AGE"]
    schema = _schema(_crd())
    for column in columns:
        path = column["jsonPath"]
        assert re.fullmatch(r"(\.[A-Za-z]+)+", path), path
        if path == ".metadata.creationTimestamp":
            continue  # metadata is the API server's, not the schema's
        node: dict[str, Any] = schema
        for part in path.strip(".").split("."):
            node = node["properties"][part]
        assert node["type"] == column["type"], column


def _view() -> dict[str, Any]:
    pool = {
        "pool": "private", "role": "private", "capacity_type": "owned", "status": "serving",
        "desired": 2, "ready": 2, "starting": 0, "draining": 0, "weight": 80,
        "served_rps": 150.0, "queue_time_ms": 1.234, "capacity_rps": 105.0, "usd_per_hour": 2.1,
    }  # fmt: skip
    burst = {**pool, "pool": "burst_spot", "role": "burst", "capacity_type": "spot",
             "ready": 1, "desired": 2, "weight": 20, "served_rps": None, "queue_time_ms": None,
             "usd_per_hour": 0.9}  # fmt: skip
    return {
        "at": 1_800_000_000.0, "mode": "burst", "demand_rps": 196.4, "planned_rps": 230.0,
        "budget_limited": False, "tick_seconds": 2.0, "pools": [pool, burst],
    }  # fmt: skip


def _as_json_schema(node: Any) -> Any:
    """OpenAPI v3's `nullable: true` as JSON Schema's null type."""
    if isinstance(node, dict):
        converted = {k: _as_json_schema(v) for k, v in node.items() if not k.startswith("x-")}
        if converted.pop("nullable", False):
            converted["type"] = [converted["type"], "null"]
        return converted
    if isinstance(node, list):
        return [_as_json_schema(item) for item in node]
    return node


def test_the_status_the_controller_writes_fits_the_schema() -> None:
    extras = Extras(12.345, 300.0, "spillover-7d9-abc", False,
                    {"at": "2027-01-15T08:00:00Z", "decision": "scale burst_spot to 2",
                     "reason": "overflow 196 rps needs 2 × 105 rps"}, [])  # fmt: skip
    body = status_body(_view(), extras, None)
    schema = _as_json_schema(_schema(_crd())["properties"]["status"])
    jsonschema.validate(body, schema, format_checker=jsonschema.FormatChecker())
    assert (body["private"], body["burst"], body["demandRps"]) == ("2/2", "1/2", 196)
    assert body["usdPerHour"] == 3.0
    assert [c["type"] for c in body["conditions"]] == list(CONDITION_TYPES)
    assert list(CONDITION_TYPES) == ["Ready", "Degraded", "BudgetLimited", "SafeMode"]


def test_a_status_the_schema_refuses_is_refused() -> None:
    """The schema check can fail: a mode the schema does not know."""
    body = status_body(_view(), Extras(0, 0, "x", False, None, []), None)
    body["mode"] = "panic"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body, _as_json_schema(_schema(_crd())["properties"]["status"]))


def test_conditions_keep_their_transition_time_until_their_status_changes() -> None:
    first = status_body(_view(), Extras(0, 0, "x", False, None, []), None)
    later_view = {**_view(), "at": 1_800_000_100.0}
    same = status_body(later_view, Extras(0, 0, "x", False, None, []), first)
    assert same["conditions"] == first["conditions"]
    paused = status_body(later_view, Extras(0, 0, "x", True, None, []), first)
    ready = {c["type"]: c for c in paused["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "Paused")
    assert ready["lastTransitionTime"] == "2027-01-15T08:01:40Z"
    assert {c["type"]: c for c in paused["conditions"]}["SafeMode"] == {
        c["type"]: c for c in first["conditions"]
    }["SafeMode"]
