"""The allow-list's rules, checked against what real clients send; requests are in tests/local."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from tritonclient.grpc import service_pb2

from spillover.drivers import haproxy
from spillover.drivers.haproxy_exposure import grpc_rules, http_rules
from spillover.model.contract import MODEL_NAME
from tests.drivers.gateway_harness import make_spec, unused_slot

SERVED_MODEL_BYTES = re.compile(r"grpc_names_served_model req\.body,bytes\(5,(\d+)\) -m bin (\w+)")

MODEL_REQUESTS = {
    "ModelInfer": lambda name: service_pb2.ModelInferRequest(model_name=name, id="7"),
    "ModelMetadata": lambda name: service_pb2.ModelMetadataRequest(name=name, version="1"),
    "ModelConfig": lambda name: service_pb2.ModelConfigRequest(name=name, version="1"),
    "ModelReady": lambda name: service_pb2.ModelReadyRequest(name=name, version="1"),
}
"""Every gRPC model call the gateway allows, as tritonclient's protobuf classes build it."""


def _expected_message_start(rules: list[str]) -> bytes:
    [match] = [m for line in rules if (m := SERVED_MODEL_BYTES.search(line))]
    length, hex_bytes = int(match[1]), match[2]
    assert len(bytes.fromhex(hex_bytes)) == length
    return bytes.fromhex(hex_bytes)


@pytest.mark.parametrize("method", MODEL_REQUESTS)
@pytest.mark.parametrize("model", [MODEL_NAME, "m" * 200], ids=["served", "name-over-127-bytes"])
def test_grpc_check_matches_how_protobuf_writes_the_model_name(method: str, model: str) -> None:
    rules = grpc_rules(model)
    assert f"/inference.GRPCInferenceService/{method}" in " ".join(rules)
    message = MODEL_REQUESTS[method](model).SerializeToString()
    assert message.startswith(_expected_message_start(rules))
    other = MODEL_REQUESTS[method](model + "x").SerializeToString()
    assert not other.startswith(_expected_message_start(rules)), "a longer name must not pass"


def test_http_rules_name_the_served_model_and_escape_it() -> None:
    rules = " ".join(http_rules("recommender.v2"))
    assert "^/v2/models/recommender\\.v2(/versions/[0-9]+)?/infer$" in rules


@pytest.mark.parametrize(
    "model",
    ["", "two words", "a'quote", "slash/in", "é"],
    ids=["empty", "space", "quote", "slash", "non-ascii"],
)
def test_a_model_name_the_rules_cannot_carry_is_refused_naming_the_field(model: str) -> None:
    with pytest.raises(ValueError, match="served_model must be"):
        dataclasses.replace(_spec(), served_model=model)


def test_local_stats_page_is_only_on_the_loopback_metrics_frontend() -> None:
    spec = _spec()
    sections = haproxy.render_config(spec).split("\n\n")
    with_stats = [section for section in sections if "stats enable" in section]
    assert len(with_stats) == 1
    assert with_stats[0].startswith(f"frontend metrics\n    bind 127.0.0.1:{spec.metrics_port}\n")


def _spec() -> haproxy.GatewaySpec:
    return make_spec(Path("/tmp/spillover-test"), [unused_slot("private-0")])
