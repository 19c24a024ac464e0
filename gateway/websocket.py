"""Proxying an authenticated WebSocket upgrade, both ways.

The token is checked once, at the upgrade (by the caller).  Then the gateway
opens its own WebSocket to the upstream and relays every frame as it is:
text, binary, ping, pong and close with its code.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web
from multidict import CIMultiDict

from gateway.errors import BadGateway, GatewayTimeout, Problem
from gateway.keys import UPSTREAM_CLIENT
from gateway.routing import Route

log = logging.getLogger("gateway.proxy")

# Largest single message relayed, either way.  aiohttp refuses a message
# of max_msg_size bytes or more, hence the one extra byte.
MAX_MESSAGE = 4 * 1024 * 1024 + 1


class _Socket(Protocol):
    async def receive(self) -> aiohttp.WSMessage: ...
    async def send_str(self, data: str) -> None: ...
    async def send_bytes(self, data: bytes) -> None: ...
    async def ping(self, message: bytes = b"") -> None: ...
    async def pong(self, message: bytes = b"") -> None: ...
    async def close(self, *, code: int = ..., message: bytes = b"") -> bool: ...


def is_websocket_upgrade(request: web.Request) -> bool:
    connection = request.headers.get("Connection", "").lower()
    upgrade = request.headers.get("Upgrade", "").lower()
    return upgrade == "websocket" and "upgrade" in connection


async def proxy_websocket(
    request: web.Request, route: Route, headers: CIMultiDict[str]
) -> web.WebSocketResponse:
    for name in [key for key in headers if key.lower().startswith("sec-websocket-")]:
        del headers[name]
    protocols = [
        part.strip()
        for value in request.headers.getall("Sec-WebSocket-Protocol", ())
        for part in value.split(",")
        if part.strip()
    ]
    upstream = await _connect(request, route, headers, protocols)
    # No automatic answers: a close is answered only after the other side
    # has it, so a peer that hangs up right after its close handshake cannot
    # cut the relay (and its close code) short.
    client = web.WebSocketResponse(
        protocols=[upstream.protocol] if upstream.protocol else (),
        autoping=False,
        autoclose=False,
        max_msg_size=MAX_MESSAGE,
    )
    try:
        await client.prepare(request)
        await _relay_both_ways(client, upstream)
    finally:
        if not upstream.closed:
            await upstream.close()
    return client


async def _connect(
    request: web.Request,
    route: Route,
    headers: CIMultiDict[str],
    protocols: list[str],
) -> aiohttp.ClientWebSocketResponse:
    url = route.base_url.replace("http", "ws", 1) + request.rel_url.raw_path_qs
    try:
        async with asyncio.timeout(route.timeout):
            return await request.app[UPSTREAM_CLIENT].ws_connect(
                url,
                headers=headers,
                protocols=protocols,
                autoping=False,
                autoclose=False,
                max_msg_size=MAX_MESSAGE,
            )
    except TimeoutError:
        raise GatewayTimeout("the upstream did not answer in time") from None
    except aiohttp.WSServerHandshakeError as exc:
        # The upstream answered the upgrade with an error: pass its status on.
        if 400 <= exc.status < 500:
            problem = Problem("the upstream refused the upgrade")
            problem.status, problem.title = exc.status, exc.message or "Refused"
            raise problem from None
        raise BadGateway("the upstream refused the upgrade") from None
    except aiohttp.ClientError as exc:
        log.warning(
            "upstream unreachable",
            extra={"upstream": route.base_url, "error": type(exc).__name__},
        )
        raise BadGateway("the upstream could not be reached") from None


async def _relay_both_ways(
    client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse
) -> None:
    to_upstream = asyncio.create_task(_pump(client, upstream))
    to_client = asyncio.create_task(_pump(upstream, client))
    done, _ = await asyncio.wait(
        {to_upstream, to_client}, return_when="FIRST_COMPLETED"
    )
    # Stop the other direction before closing, so that no receive() is
    # waiting on a socket while it is closed (aiohttp would answer the close
    # itself, with its own code).
    for task in (to_upstream, to_client):
        task.cancel()
    await asyncio.gather(to_upstream, to_client, return_exceptions=True)

    finished = done.pop()
    code, reason = _close_of(finished)
    first, second = (
        (upstream, client) if finished is to_upstream else (client, upstream)
    )
    await asyncio.shield(_close_in_order(first, second, code, reason))


async def _close_in_order(
    first: _Socket, second: _Socket, code: int, reason: bytes
) -> None:
    """Pass the close on, then answer the side that started it (same code)."""
    await first.close(code=code, message=reason)
    await second.close(code=code, message=reason)


async def _pump(source: _Socket, sink: _Socket) -> tuple[int, bytes]:
    """Relay frames from *source* to *sink*; return how *source* closed."""
    while True:
        message = await source.receive()
        kind = message.type
        if kind is WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif kind is WSMsgType.BINARY:
            await sink.send_bytes(message.data)
        elif kind is WSMsgType.PING:
            await sink.ping(message.data)
        elif kind is WSMsgType.PONG:
            await sink.pong(message.data)
        elif kind is WSMsgType.CLOSE:
            return int(message.data), (message.extra or "").encode()
        else:  # CLOSING, CLOSED or ERROR: the other side is gone
            return int(WSCloseCode.GOING_AWAY), b""


def _close_of(task: asyncio.Task[tuple[int, bytes]]) -> tuple[int, bytes]:
    if task.cancelled() or task.exception() is not None:
        return int(WSCloseCode.INTERNAL_ERROR), b""
    return task.result()
