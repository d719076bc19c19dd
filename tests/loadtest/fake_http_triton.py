"""A stand-in for one Triton replica's HTTP inference route, slow or stalling on demand.

Runs as its own process so the generator under test has its interpreter to itself,
as it would against a real server. It binds port 0 and prints one JSON line,
``{"port": ...}``, once it accepts connections.

    POST /v2/models/<model>/infer   answers {"model_name", "outputs": []} after delay_s
    POST /control                   JSON {"delay_s", "status", "stall": [from, until]}
                                    (epoch seconds); also forgets what was received
    GET  /received                  JSON list of the epoch times requests arrived

A request arriving during the stall waits until it ends, like a frozen replica.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from aiohttp import web


class Behaviour:
    def __init__(self) -> None:
        self.delay_s = 0.0
        self.status = 200
        self.stall: tuple[float, float] | None = None
        self.received: list[float] = []


def make_app(behaviour: Behaviour) -> web.Application:
    async def infer(request: web.Request) -> web.Response:
        arrived = time.time()
        behaviour.received.append(arrived)
        await request.read()
        stall = behaviour.stall
        if stall is not None and stall[0] <= arrived < stall[1]:
            await asyncio.sleep(stall[1] - arrived)
        await asyncio.sleep(behaviour.delay_s)
        if behaviour.status != 200:
            # As HAProxy answers when no server is up: HTML, not Triton's JSON error.
            return web.Response(status=behaviour.status, text="<html>no server</html>")
        return web.json_response({"model_name": request.match_info["model"], "outputs": []})

    async def control(request: web.Request) -> web.Response:
        settings = await request.json()
        behaviour.delay_s = float(settings.get("delay_s", 0.0))
        behaviour.status = int(settings.get("status", 200))
        stall = settings.get("stall")
        behaviour.stall = (float(stall[0]), float(stall[1])) if stall else None
        behaviour.received = []
        return web.json_response({})

    async def received(request: web.Request) -> web.Response:
        return web.json_response(behaviour.received)

    app = web.Application()
    app.router.add_post("/v2/models/{model}/infer", infer)
    app.router.add_post("/control", control)
    app.router.add_get("/received", received)
    return app


async def serve() -> None:
    runner = web.AppRunner(make_app(Behaviour()), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(json.dumps({"port": runner.addresses[0][1]}), flush=True)
    await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        sys.exit(0)
