"""The tritonclient adapters a load run sends through: one asyncio client per run,
gRPC or HTTP, reduced to "infer these inputs", and failures named by a short kind."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from loadtest.results import Target
from spillover.model.contract import MODEL_NAME
from spillover.serving.client import requested_outputs

HTTP_CONNECTIONS = 1000
"""Open-loop load needs a connection per request in flight; this bounds the client."""

Infer = Callable[[list], Awaitable[object]]
"""Send one request's inputs; returns Triton's answer or raises what went wrong."""
Close = Callable[[], Awaitable[None]]


async def open_client(target: Target, timeout_s: float) -> tuple[Infer, Close]:
    """One tritonclient aio client for the run; created inside the running loop, as
    both aiohttp and grpc.aio bind to it. The clients enforce the request timeout
    themselves, which costs less per request than a wrapper task."""
    outputs = requested_outputs(target.protocol)
    if target.protocol == "http":
        import tritonclient.http.aio as http_aio

        http = http_aio.InferenceServerClient(
            target.url, conn_limit=HTTP_CONNECTIONS, conn_timeout=timeout_s
        )

        async def infer_http(inputs: list) -> object:
            return await http.infer(MODEL_NAME, inputs, outputs=outputs)

        return infer_http, http.close
    import tritonclient.grpc.aio as grpc_aio

    grpc = grpc_aio.InferenceServerClient(target.url)

    async def infer_grpc(inputs: list) -> object:
        return await grpc.infer(MODEL_NAME, inputs, outputs=outputs, client_timeout=timeout_s)

    return infer_grpc, grpc.close


def error_kind(error: BaseException) -> str:
    """A short, countable name: gRPC status names, HTTP status codes, "timeout" (the
    same word for both protocols), or the exception's class (connection refused...)."""
    if isinstance(error, (TimeoutError, asyncio.TimeoutError)):
        return "timeout"
    status = getattr(error, "status", None)
    code = status() if callable(status) else None
    if isinstance(code, str) and code:
        if code.startswith("StatusCode."):
            name = code.removeprefix("StatusCode.")
            return "timeout" if name == "DEADLINE_EXCEEDED" else name
        return f"HTTP {code}" if code.isdigit() else code
    return type(error).__name__
