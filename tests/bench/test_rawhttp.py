"""The benchmark's HTTP client: keep-alive exchanges, and no hang when the server goes."""

from __future__ import annotations

import asyncio

from spillover.bench.load import run_closed_loop
from spillover.bench.rawhttp import http_request, pooled_sender


async def _start_server(statuses: list[int]) -> tuple[asyncio.Server, list[asyncio.StreamWriter]]:
    """A tiny keep-alive HTTP server answering each request with the next status."""
    connections: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            status = statuses.pop(0) if statuses else 200
            writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\n\r\nok".encode())

    return await asyncio.start_server(handle, "127.0.0.1", 0), connections


def test_failures_are_counted_and_the_loop_ends_when_the_server_goes_away():
    async def scenario():
        server, connections = await _start_server(statuses=[200, 503])
        port = server.sockets[0].getsockname()[1]
        request = http_request("127.0.0.1", port, "/", b"{}", {})
        send, pool = await pooled_sender("127.0.0.1", port, [request], concurrency=4)
        served = await run_closed_loop("up", send, 4, duration_s=0.3, max_requests=200)
        server.close()
        for writer in connections:
            writer.close()
        await server.wait_closed()
        gone = await asyncio.wait_for(
            run_closed_loop("gone", send, 4, duration_s=0.3, max_requests=10**6), timeout=10
        )
        await pool.close()
        return served, gone

    served, gone = asyncio.run(scenario())
    assert served.ok == 199 and served.failures == ["RuntimeError: HTTP 503"]
    assert gone.ok == 0 and gone.failures, "requests to a closed server must fail, not hang"
