"""What the gateway exposes of Triton: an allow-list, rendered as HAProxy frontend rules.

Clients may run inference on the served model, ask whether the server and that model
are up, and read that model's metadata and config. Everything else (the model
repository API that loads and unloads models, other models, logging and trace
settings, shared-memory registration, statistics, and any path not listed here) is
answered by the gateway itself: HTTP 403, gRPC PERMISSION_DENIED. It is an allow-list,
so an API a future Triton adds stays closed until it is listed here.

The local gateway (``haproxy_config``) and the gateway chart (its ``files/``, written
by ``scripts/sync-gateway-allowlist.py``) carry these very lines.

gRPC requests name their model inside the protobuf message, so the gateway reads the
message's first field. Every protobuf library writes fields in field-number order, and
the model name is field 1 of each allowed model request (ModelInferRequest,
ModelMetadataRequest, ModelConfigRequest, ModelReadyRequest). A message that names its
model later, or is compressed, is refused: the check fails closed. A hand-made message
that repeats field 1 (protobuf keeps the last value) could still name another model to
Triton, which is why each replica serves the one model alone.
"""

from __future__ import annotations

import re

GRPC_SERVICE = "inference.GRPCInferenceService"
"""Triton's gRPC service (KServe v2 predict protocol)."""

GRPC_SERVER_METHODS = ("ServerLive", "ServerReady")
"""gRPC health calls that name no model."""

GRPC_MODEL_METHODS = ("ModelReady", "ModelMetadata", "ModelConfig", "ModelInfer")
"""gRPC calls allowed on the served model only (its name is field 1 of their request)."""

HTTP_HEALTH_PATHS = ("/v2/health/live", "/v2/health/ready")
"""Server liveness and readiness; GET (and HEAD) only."""

HTTP_STATUS_REFUSED = 403
"""What a refused HTTP request gets."""

GRPC_STATUS_PERMISSION_DENIED = 7
"""google.rpc.Code PERMISSION_DENIED: what a refused gRPC call gets."""

MODEL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")
"""Model names the rules can carry: no quote, space or slash to escape in haproxy.cfg or a path."""


def refusal_message(model: str) -> str:
    """The text a refused client reads: what the gateway does expose."""
    return (
        "forbidden by the spillover gateway: it exposes inference, health and the metadata "
        f"and config of model {model} only"
    )


def http_rules(model: str) -> list[str]:
    """The HTTP frontend's allow-list: HTTP/1.1 or h2, KServe v2 REST paths of ``model``."""
    require_model_name(model)
    name = re.escape(model)
    # Anchored and exact: a path with '..', '//' or percent-encoding matches nothing and is refused.
    return [
        f"acl triton_health path {' '.join(HTTP_HEALTH_PATHS)}",
        f"acl served_model_read path_reg '^/v2/models/{name}(/versions/[0-9]+)?(/config|/ready)?$'",
        f"acl served_model_infer path_reg '^/v2/models/{name}(/versions/[0-9]+)?/infer$'",
        f"http-request return status {HTTP_STATUS_REFUSED} content-type application/json"
        f""" string '{{"error":"{refusal_message(model)}"}}'"""
        " unless METH_GET triton_health or METH_GET served_model_read"
        " or METH_POST served_model_infer",
    ]


def grpc_rules(model: str) -> list[str]:
    """The gRPC frontend's allow-list: server health, and the model calls naming ``model``."""
    require_model_name(model)
    # gRPC frame: 1 byte compressed flag (0), 4 bytes message length, then the message,
    # whose first bytes are field 1's tag (wire type 2), the name's length and the name.
    name = model.encode()
    field_one = b"\x0a" + _varint(len(name)) + name
    return [
        f"acl grpc_server_health path {_grpc_paths(GRPC_SERVER_METHODS)}",
        f"acl grpc_model_call path {_grpc_paths(GRPC_MODEL_METHODS)}",
        "acl grpc_uncompressed req.body,bytes(0,1) -m bin 00",
        f"acl grpc_names_served_model req.body,bytes(5,{len(field_one)}) -m bin {field_one.hex()}",
        # A trailers-only answer: gRPC clients read grpc-status from its headers. It has no
        # content-type: HAProxy drops it from a reply without a body (tritonclient's gRPC
        # client, on grpc-core, reports PERMISSION_DENIED all the same).
        "http-request return status 200"
        f" hdr grpc-status {GRPC_STATUS_PERMISSION_DENIED}"
        f' hdr grpc-message "{refusal_message(model)}"'
        " unless grpc_server_health"
        " or grpc_model_call grpc_uncompressed grpc_names_served_model",
    ]


def _grpc_paths(methods: tuple[str, ...]) -> str:
    return " ".join(f"/{GRPC_SERVICE}/{method}" for method in methods)


def _varint(value: int) -> bytes:
    """Protobuf's base-128 varint: 7 bits per byte, low first, high bit means more follow."""
    encoded = bytearray()
    while value > 0x7F:
        encoded.append(value & 0x7F | 0x80)
        value >>= 7
    encoded.append(value)
    return bytes(encoded)


def require_model_name(model: str) -> None:
    """ValueError unless ``model`` is a name the rules can carry without escaping."""
    if not MODEL_NAME_PATTERN.match(model):
        raise ValueError(
            f"served_model must be letters, digits, '_', '.' or '-' (a Triton model name), "
            f"got {model!r}"
        )
