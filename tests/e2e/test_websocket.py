"""Authenticated WebSocket upgrades, relayed both ways to a real server."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.client import bearer, new_session
from tests.conftest import Gateway, GatewayFactory
from tests.servers import HOST, ServerProcess, free_port

ECHO = Path(__file__).parent.parent / "ws_echo.py"


@pytest.fixture
def echo_server() -> Iterator[ServerProcess]:
    port = free_port()
    server = ServerProcess("ws-echo", [sys.executable, str(ECHO), str(port)], port)
    yield server.start()
    server.stop()


@pytest.fixture
def ws_gateway(start_gateway: GatewayFactory, echo_server: ServerProcess) -> Gateway:
    return start_gateway("memory://", f"http://{HOST}:{echo_server.port}")


async def test_upgrade_without_a_token_is_refused(
    ws_gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    """No access token: the handshake fails with 401."""
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await http.ws_connect(f"{ws_gateway.url}/ws")
    assert caught.value.status == 401


async def test_frames_flow_both_ways(
    ws_gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    """Text, binary, ping/pong pass through; the upstream sees X-User-Id."""
    pair = await new_session(http, ws_gateway.url, "socketeer")
    async with http.ws_connect(
        f"{ws_gateway.url}/ws", headers=bearer(pair["access_token"]), autoping=False
    ) as ws:
        await ws.send_str("hello")
        assert (await ws.receive(timeout=5)).data == "hello"
        await ws.send_bytes(b"\x00\x01\xff")
        assert (await ws.receive(timeout=5)).data == b"\x00\x01\xff"
        await ws.send_str("whoami")
        answer = (await ws.receive(timeout=5)).data
        assert answer.startswith("user:") and len(answer) == len("user:") + 36
        await ws.ping(b"are you there")
        pong = await ws.receive(timeout=5)
        assert pong.type is aiohttp.WSMsgType.PONG
        assert pong.data == b"are you there"


async def test_close_codes_pass_through(
    ws_gateway: Gateway, echo_server: ServerProcess, http: aiohttp.ClientSession
) -> None:
    """The upstream's close code reaches the client, and the client's the
    upstream."""
    pair = await new_session(http, ws_gateway.url, "closer")
    auth = bearer(pair["access_token"])
    async with http.ws_connect(f"{ws_gateway.url}/ws", headers=auth) as ws:
        await ws.send_str("close-4002")
        message = await ws.receive(timeout=5)
        assert message.type is aiohttp.WSMsgType.CLOSE
        assert message.data == 4002

    async with http.ws_connect(f"{ws_gateway.url}/ws", headers=auth) as ws:
        await ws.send_str("ping")
        await ws.receive(timeout=5)
        await ws.close(code=4001, message=b"client leaves")
    for _ in range(50):
        if "closed 4001" in echo_server.output():
            break
        await asyncio.sleep(0.05)
    assert "closed 4001" in echo_server.output()
