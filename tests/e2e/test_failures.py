"""What the gateway does when something around it fails: a huge download,
SIGTERM mid-request, a client that hangs up, a locked database, a crash
right after a 201, a frozen store."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from pathlib import Path

import aiohttp
import pytest

from tests.client import bearer, login, new_session, register
from tests.conftest import Gateway, GatewayFactory
from tests.recorder import Recorder
from tests.servers import redis_server


def resident_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def pid_of(gateway: Gateway) -> int:
    assert gateway.process.process is not None
    return gateway.process.process.pid


async def test_a_1gb_download_does_not_grow_the_gateway(
    start_gateway: GatewayFactory, recorder: Recorder, http: aiohttp.ClientSession
) -> None:
    """1 GiB streams through while the gateway's memory stays flat."""
    gateway = start_gateway("memory://", recorder.url)
    pair = await new_session(http, gateway.url, "downloader")
    auth = bearer(pair["access_token"])
    async with http.get(f"{gateway.url}/big/8", headers=auth) as response:
        await response.read()  # warm up buffers and pools
    before = resident_kib(pid_of(gateway))

    received = 0
    async with http.get(f"{gateway.url}/big/1024", headers=auth) as response:
        async for chunk in response.content.iter_chunked(1 << 20):
            received += len(chunk)
    after = resident_kib(pid_of(gateway))

    assert received == 1024 * 1024 * 1024
    assert after - before < 32 * 1024, f"grew from {before} to {after} KiB"


async def test_sigterm_lets_requests_in_flight_finish(
    start_gateway: GatewayFactory, recorder: Recorder, http: aiohttp.ClientSession
) -> None:
    """On SIGTERM the gateway stops accepting, finishes what it is serving
    and exits 0."""
    gateway = start_gateway("memory://", recorder.url)
    pair = await new_session(http, gateway.url, "inflight")
    slow = asyncio.create_task(
        http.get(f"{gateway.url}/finish/1.5", headers=bearer(pair["access_token"]))
    )
    await asyncio.sleep(0.5)
    os.kill(pid_of(gateway), signal.SIGTERM)
    await asyncio.sleep(0.3)

    with pytest.raises(aiohttp.ClientConnectionError):
        await http.get(f"{gateway.url}/.well-known/jwks.json")
    response = await slow
    assert response.status == 200
    assert await response.text() == "finished"
    assert gateway.process.process is not None
    assert gateway.process.process.wait(timeout=10) == 0


async def test_a_client_hanging_up_cancels_the_upstream_request(
    start_gateway: GatewayFactory, recorder: Recorder, http: aiohttp.ClientSession
) -> None:
    """When the client goes away, the gateway drops its upstream request."""
    gateway = start_gateway("memory://", recorder.url)
    pair = await new_session(http, gateway.url, "quitter")
    with pytest.raises(TimeoutError):
        await http.get(
            f"{gateway.url}/hang",
            headers=bearer(pair["access_token"]),
            timeout=aiohttp.ClientTimeout(total=0.5),
        )
    for _ in range(60):
        if recorder.cancelled:
            break
        await asyncio.sleep(0.05)
    assert recorder.cancelled == 1


async def test_locked_database_is_503_then_recovers(
    start_gateway: GatewayFactory, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """A database held by another writer: 503 with Retry-After, never a
    registration answered 201 and then lost; fine again once released."""
    gateway = start_gateway(database_busy_timeout="0.3")
    path = gateway.env["GATEWAY_DATABASE_PATH"]
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        async with await register(http, gateway.url, "locked") as response:
            assert response.status == 503
            assert "Retry-After" in response.headers
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    async with await register(http, gateway.url, "locked") as response:
        assert response.status == 201


async def test_a_201_survives_a_crash_right_after(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    """A registration answered 201 is on disk even if the gateway is killed."""
    gateway = start_gateway()
    async with await register(http, gateway.url, "durable") as response:
        assert response.status == 201
        user_id = (await response.json())["id"]
    os.kill(pid_of(gateway), signal.SIGKILL)
    assert gateway.process.process is not None
    gateway.process.process.wait(timeout=10)

    with sqlite3.connect(gateway.env["GATEWAY_DATABASE_PATH"]) as database:
        row = database.execute(
            "SELECT username FROM users WHERE id = ?", (user_id,)
        ).fetchone()
    assert row == ("durable",)


async def test_frozen_store_gives_fast_503s_and_proxying_goes_on(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    """A store that stops answering: /user/* is 503 within store.timeout,
    valid access tokens are still proxied, and it heals when the store does."""
    store = redis_server().start()
    assert store.process is not None
    gateway = start_gateway(f"redis://127.0.0.1:{store.port}/0", store_timeout="0.5")
    pair = await new_session(http, gateway.url, "icy")
    os.kill(store.process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        async with await login(http, gateway.url, "icy") as response:
            assert response.status == 503
        assert time.monotonic() - started < 2.0
        async with http.get(
            f"{gateway.url}/resource", headers=bearer(pair["access_token"])
        ) as response:
            assert response.status == 200
    finally:
        os.kill(store.process.pid, signal.SIGCONT)
    for _ in range(50):
        async with await login(http, gateway.url, "icy") as response:
            if response.status == 200:
                break
        await asyncio.sleep(0.1)
    assert response.status == 200
    store.stop()
