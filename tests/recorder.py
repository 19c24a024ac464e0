"""A loopback upstream that records what reached it, for proxy tests."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

from tests.servers import HOST, free_port


@dataclass
class Received:
    method: str
    raw_path: str
    headers: list[tuple[str, str]]
    body: bytes

    def header_values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]


@dataclass
class Recorder:
    url: str
    received: list[Received] = field(default_factory=list)
    # Requests to /hang whose handler was cancelled by the peer hanging up.
    cancelled: int = 0


GZIPPED = gzip.compress(b"compressed payload " * 100)


async def _record(request: web.Request, recorder: Recorder) -> bytes:
    body = await request.read()
    headers = [(k.decode(), v.decode()) for k, v in request.raw_headers]
    recorder.received.append(Received(request.method, request.raw_path, headers, body))
    return body


def _routes(recorder: Recorder) -> web.RouteTableDef:
    routes = web.RouteTableDef()

    @routes.route("*", "/cookies")
    async def cookies(request: web.Request) -> web.Response:
        await _record(request, recorder)
        response = web.Response(text="two cookies")
        response.headers.add("Set-Cookie", "a=1; Path=/")
        response.headers.add("Set-Cookie", "b=2; Path=/")
        return response

    @routes.get("/gzip")
    async def gzipped(request: web.Request) -> web.Response:
        await _record(request, recorder)
        return web.Response(
            body=GZIPPED,
            headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"},
        )

    @routes.get("/redirect")
    async def redirect(request: web.Request) -> web.Response:
        await _record(request, recorder)
        return web.Response(status=302, headers={"Location": "/elsewhere"})

    @routes.route("*", "/empty")
    async def empty(request: web.Request) -> web.Response:
        await _record(request, recorder)
        return web.Response(status=204)

    @routes.get("/slow")
    async def slow(request: web.Request) -> web.Response:
        await _record(request, recorder)
        await asyncio.sleep(5)
        return web.Response(text="late")

    @routes.get("/hang")
    async def hang(request: web.Request) -> web.Response:
        await _record(request, recorder)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            recorder.cancelled += 1
            raise
        return web.Response(text="never")

    @routes.get("/{head:.*}finish/{seconds}")
    async def finish(request: web.Request) -> web.Response:
        await _record(request, recorder)
        await asyncio.sleep(float(request.match_info["seconds"]))
        return web.Response(text="finished")

    @routes.get("/big/{megabytes}")
    async def big(request: web.Request) -> web.StreamResponse:
        await _record(request, recorder)
        response = web.StreamResponse()
        await response.prepare(request)
        block = bytes(range(256)) * 4096  # 1 MiB
        for _ in range(int(request.match_info["megabytes"])):
            await response.write(block)
        await response.write_eof()
        return response

    @routes.post("/digest")
    async def digest(request: web.Request) -> web.Response:
        body = await _record(request, recorder)
        return web.json_response(
            {"sha256": hashlib.sha256(body).hexdigest(), "length": len(body)}
        )

    @routes.route("*", r"/{tail:[\s\S]*}")
    async def anything(request: web.Request) -> web.Response:
        await _record(request, recorder)
        return web.json_response({"ok": True}, headers={"X-Upstream": "recorder"})

    return routes


@asynccontextmanager
async def recording_upstream() -> AsyncIterator[Recorder]:
    port = free_port()
    recorder = Recorder(f"http://{HOST}:{port}")
    # It records bodies exactly as they arrive, compressed or not.
    app = web.Application(
        client_max_size=64 * 1024 * 1024, handler_args={"auto_decompress": False}
    )
    app.add_routes(_routes(recorder))
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, HOST, port)
    await site.start()
    try:
        yield recorder
    finally:
        await runner.cleanup()
