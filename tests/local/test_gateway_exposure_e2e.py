"""Only inference is exposed: forbidden calls through a real gateway, from a real tritonclient.

One real Triton replica serves the model. In front of it run the local gateway (``spillover
local up``'s) and the gateway chart's rendered haproxy.cfg, moved onto loopback. Each
forbidden call must get HTTP 403 / gRPC PERMISSION_DENIED from the gateway itself, and the
model must keep serving afterwards; a call that reaches Triton past the gateway still cannot
unload the model (``--model-control-mode=none``).
"""

from __future__ import annotations

import http.client
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from spillover.drivers.haproxy_exposure import refusal_message
from spillover.drivers.tritonserver import ReplicaPorts
from spillover.local.stack import LocalStack
from spillover.model.contract import MODEL_NAME
from spillover.serving.client import RecommenderClient, build_inputs
from tests.charts.gateway_locally import running_chart_gateway
from tests.charts.rendering import chart_dir, kube_version_floor, render
from tests.support import running_local_stack

PROTOCOLS = ["http", "grpc"]
REFUSED = {"http": "403", "grpc": "StatusCode.PERMISSION_DENIED"}
"""What tritonclient reports as the status of a refused call, per protocol."""

Client = Any
"""A tritonclient InferenceServerClient, HTTP or gRPC: the calls below exist on both."""


def _infer_other_model(client: Client) -> object:
    protocol = "http" if isinstance(client, triton_http.InferenceServerClient) else "grpc"
    inputs = build_inputs(protocol, [1], np.full((1, 3), 1, dtype=np.int64))
    return client.infer("not_served", inputs)


FORBIDDEN: dict[str, Callable[[Client], object]] = {
    "unload-model": lambda c: c.unload_model(MODEL_NAME),
    "load-model": lambda c: c.load_model(MODEL_NAME),
    "repository-index": lambda c: c.get_model_repository_index(),
    "update-log-settings": lambda c: c.update_log_settings({"log_verbose_level": 1}),
    "read-log-settings": lambda c: c.get_log_settings(),
    "update-trace-settings": lambda c: c.update_trace_settings(
        settings={"trace_level": ["TIMESTAMPS"]}
    ),
    "register-system-shm": lambda c: c.register_system_shared_memory("probe", "/probe", 64),
    "unregister-system-shm": lambda c: c.unregister_system_shared_memory(),
    "statistics": lambda c: c.get_inference_statistics(MODEL_NAME),
    "server-metadata": lambda c: c.get_server_metadata(),
    "other-model-metadata": lambda c: c.get_model_metadata("not_served"),
    "other-model-config": lambda c: c.get_model_config("not_served"),
    "infer-other-model": _infer_other_model,
}
"""Calls the gateway must refuse, each as tritonclient makes it."""


@pytest.fixture(scope="module")
def replica_stack(
    tmp_path_factory: pytest.TempPathFactory, model_file: Path
) -> Iterator[LocalStack]:
    """The local stack with one private replica and no burst; always torn down."""
    run_dir = tmp_path_factory.mktemp("exposure") / "run"
    with running_local_stack(run_dir, model_file, private=1, burst=0) as stack:
        yield stack


@pytest.fixture(scope="module")
def replica_ports(replica_stack: LocalStack) -> ReplicaPorts:
    state = replica_stack.run_dir.load()
    assert state is not None
    return next(slot.ports for slot in state.layout.slots if slot.pool == "private")


@pytest.fixture(scope="module")
def chart_endpoints(
    replica_ports: ReplicaPorts, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """The gateway chart's default config, rendered by Helm, in front of the same replica."""
    chart = helm.Chart.load(chart_dir("spillover-gateway"))
    try:
        rendered = render(chart, kube_version=kube_version_floor("spillover-gateway"))
    finally:
        chart.close()
    cfg = rendered.one("ConfigMap")["data"]["haproxy.cfg"]
    with running_chart_gateway(cfg, replica_ports, tmp_path_factory.mktemp("chart")) as gateway:
        yield {"http": gateway.endpoint("http"), "grpc": gateway.endpoint("grpc")}


@pytest.fixture(params=["local", "chart"])
def endpoints(request: pytest.FixtureRequest, replica_stack: LocalStack) -> dict[str, str]:
    """Where each gateway under test takes HTTP and gRPC requests."""
    if request.param == "local":
        return replica_stack.gateway_endpoints
    found: dict[str, str] = request.getfixturevalue("chart_endpoints")
    return found


def triton_client(protocol: str, url: str) -> Client:
    module = triton_http if protocol == "http" else triton_grpc
    return module.InferenceServerClient(url)


def assert_serving(protocol: str, url: str) -> None:
    """The model answers inference and says it is ready, through this endpoint."""
    with RecommenderClient(url, protocol) as recommender:
        assert recommender.recommend([3], [[5, 9, 11]]).item_ids.shape == (1, 20)
    client = triton_client(protocol, url)
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready(MODEL_NAME)
    finally:
        client.close()


@pytest.mark.parametrize("call", FORBIDDEN.values(), ids=FORBIDDEN.keys())
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_forbidden_call_is_refused_by_the_gateway_and_serving_continues(
    endpoints: dict[str, str], protocol: str, call: Callable[[Client], object]
) -> None:
    client = triton_client(protocol, endpoints[protocol])
    try:
        with pytest.raises(InferenceServerException) as refused:
            call(client)
    finally:
        client.close()
    assert refused.value.status() == REFUSED[protocol]
    assert refused.value.message() == refusal_message(MODEL_NAME)
    assert_serving(protocol, endpoints[protocol])


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_inference_health_and_the_served_models_metadata_pass(
    endpoints: dict[str, str], protocol: str
) -> None:
    client = triton_client(protocol, endpoints[protocol])
    as_dict = {"as_json": True} if protocol == "grpc" else {}  # HTTP answers dicts anyway
    try:
        metadata = client.get_model_metadata(MODEL_NAME, **as_dict)
        config = client.get_model_config(MODEL_NAME, **as_dict)
        assert client.is_model_ready(MODEL_NAME, model_version="1")
    finally:
        client.close()
    assert metadata["name"] == MODEL_NAME
    # gRPC wraps the config in a ModelConfigResponse; HTTP returns it bare.
    assert (config["config"] if protocol == "grpc" else config)["name"] == MODEL_NAME
    assert_serving(protocol, endpoints[protocol])


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_batch_larger_than_haproxys_buffer_still_passes(
    endpoints: dict[str, str], protocol: str
) -> None:
    # 64 users x 100 history items is 52 kB of int64: more than HAProxy buffers (16 kB),
    # so the gRPC model check must read only the message's first bytes.
    with RecommenderClient(endpoints[protocol], protocol) as recommender:
        answer = recommender.recommend(list(range(64)), np.ones((64, 100), dtype=np.int64))
    assert answer.item_ids.shape == (64, 20)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v2/repository/models/recommender/unload"),
        ("POST", "/v2/models/recommender/../../repository/index"),
        ("POST", "/v2/repository%2Findex"),
        ("POST", "//v2/repository/index"),
        ("GET", "/v2/models/recommender/infer"),
        ("POST", "/v2/models/recommender/generate"),
        ("GET", "/v2/models/not_served/ready"),
        ("GET", "/v2/models/recommender/stats"),
        ("POST", "/v2/health/ready"),
        ("GET", "/"),
    ],
    ids=[
        "unload",
        "dot-dot-past-the-model",
        "percent-encoded-slash",
        "double-slash",
        "infer-by-get",
        "generate",
        "other-model-ready",
        "model-statistics",
        "health-by-post",
        "root",
    ],
)
def test_paths_off_the_allow_list_get_403_with_a_json_error(
    endpoints: dict[str, str], method: str, path: str
) -> None:
    # tritonclient answers False for a refused readiness call; the status shows the refusal.
    host, port = endpoints["http"].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request(method, path, body=b"{}" if method == "POST" else None)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert (response.status, body) == (
        403,
        b'{"error":"%s"}' % refusal_message(MODEL_NAME).encode(),
    )


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_triton_itself_refuses_to_load_or_unload_past_the_gateway(
    replica_ports: ReplicaPorts, protocol: str
) -> None:
    url = f"127.0.0.1:{replica_ports.http if protocol == 'http' else replica_ports.grpc}"
    client = triton_client(protocol, url)
    try:
        for change in (client.unload_model, client.load_model):
            with pytest.raises(InferenceServerException, match="load / unload is not allowed"):
                change(MODEL_NAME)
    finally:
        client.close()
    assert_serving(protocol, url)
