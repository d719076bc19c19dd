"""A lean keep-alive HTTP/1.1 client for benchmarks: pre-built requests, no decoding.

On a 2-core machine the load generator shares the CPU with the servers it
measures. tritonclient spends hundreds of microseconds of Python per request,
which would make the client the bottleneck and hide the servers' difference, so
the benchmark serializes every request once up front (Triton's binary tensor
encoding through tritonclient's own serializer, JSON for Flask) and this client
only writes bytes and reads status lines and bodies.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable

import tritonclient.http as triton_http

from spillover.bench.load import Send
from spillover.model.contract import MODEL_NAME
from spillover.serving.client import build_inputs, requested_outputs
from spillover.serving.workload import Request


def http_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """One complete HTTP/1.1 POST, ready to write on a keep-alive connection."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def triton_requests(host: str, port: int, requests: Iterable[Request]) -> list[bytes]:
    """KServe v2 inference requests with binary tensors, as tritonclient sends them."""
    built = []
    for request in requests:
        inputs = build_inputs("http", request.user_ids, request.histories)
        body, json_size = triton_http.InferenceServerClient.generate_request_body(
            inputs, outputs=requested_outputs("http")
        )
        headers = {"Content-Type": "application/octet-stream"}
        if json_size is not None:
            headers["Inference-Header-Content-Length"] = str(json_size)
        built.append(http_request(host, port, f"/v2/models/{MODEL_NAME}/infer", body, headers))
    return built


def flask_body(request: Request) -> bytes:
    """The baseline's JSON request: one user and their history items."""
    return json.dumps(
        {
            "user_id": int(request.user_ids[0, 0]),
            "history": [int(item) for item in request.histories[0] if item >= 0],
        }
    ).encode()


def flask_requests(host: str, port: int, requests: Iterable[Request]) -> list[bytes]:
    headers = {"Content-Type": "application/json"}
    return [http_request(host, port, "/recommend", flask_body(r), headers) for r in requests]


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class ConnectionPool:
    """`size` keep-alive connection slots; a closed-loop worker holds one per request.

    A slot whose connection failed is left empty and reconnected on its next use, so
    a server that goes away costs failed requests, never a worker stuck waiting.
    """

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port = host, port
        self._slots: asyncio.Queue[Connection | None] = asyncio.Queue()
        for _ in range(size):
            self._slots.put_nowait(None)

    async def close(self) -> None:
        while not self._slots.empty():
            connection = self._slots.get_nowait()
            if connection is not None:
                connection[1].close()

    async def exchange(self, request: bytes) -> None:
        """Send one request and read its whole response; raise unless it is a 200."""
        connection = await self._slots.get()
        try:
            if connection is None:
                connection = await asyncio.open_connection(self.host, self.port)
            reader, writer = connection
            writer.write(request)
            status, keep_alive = await _read_response(reader)
        except BaseException:
            if connection is not None:
                connection[1].close()
            self._slots.put_nowait(None)
            raise
        if not keep_alive:
            writer.close()
        self._slots.put_nowait(connection if keep_alive else None)
        if status != 200:
            raise RuntimeError(f"HTTP {status}")


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    version, status = head[0].split(" ", 2)[:2]
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in head[1:] if line)
    }
    await reader.readexactly(int(headers.get("content-length", "0")))
    keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    return int(status), keep_alive


async def pooled_sender(
    host: str, port: int, requests: list[bytes], concurrency: int
) -> tuple[Send, ConnectionPool]:
    """A Send that cycles through pre-built requests over a pool of connections."""
    pool = ConnectionPool(host, port, concurrency)

    async def send(index: int) -> None:
        await pool.exchange(requests[index % len(requests)])

    return send, pool
