"""A store behind Redis Sentinel: the gateway follows a failover by itself."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from tests.client import login, new_session
from tests.conftest import GatewayFactory
from tests.servers import HOST, redis_replica, redis_sentinel, redis_server


async def test_the_gateway_follows_a_sentinel_failover(
    start_gateway: GatewayFactory, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """Sessions work through the sentinel; after the primary dies and the
    replica is promoted, logins work again without restarting the gateway."""
    primary = redis_server().start()
    replica = redis_replica(primary.port).start()
    sentinel = redis_sentinel(primary.port, "sessions", tmp_path).start()
    try:
        gateway = start_gateway(
            f"redis+sentinel://{HOST}:{sentinel.port}/sessions/0", store_timeout="1"
        )
        await new_session(http, gateway.url, "failover")

        primary.stop()
        for _ in range(150):  # down after 1 s, promoted a moment later
            async with await login(http, gateway.url, "failover") as response:
                if response.status == 200:
                    break
                assert response.status == 503
            await asyncio.sleep(0.1)
        assert response.status == 200
    finally:
        for server in (sentinel, replica, primary):
            server.stop()
