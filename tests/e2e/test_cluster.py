"""Many gateways on a Redis Cluster: any instance serves any session."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from tests.client import login, logout, proxied_status, refresh, register
from tests.conftest import GatewayFactory


async def test_three_gateways_share_sessions_on_a_cluster(
    start_gateway: GatewayFactory,
    redis_cluster_url: str,
    http: aiohttp.ClientSession,
) -> None:
    """Log in on one, use the token on the second, refresh on the third, log
    out on the first: the access token then dies on all three."""
    first = start_gateway(redis_cluster_url)
    database = first.env["GATEWAY_DATABASE_PATH"]
    second = start_gateway(redis_cluster_url, database_path=database)
    third = start_gateway(redis_cluster_url, database_path=database)

    async with await register(http, first.url, "everywhere") as response:
        assert response.status == 201
    async with await login(http, second.url, "everywhere") as response:
        pair = await response.json()
    assert await proxied_status(http, third.url, pair["access_token"]) == 200
    async with await refresh(http, third.url, pair["refresh_token"]) as response:
        assert response.status == 200
        pair = await response.json()
    for gateway in (first, second, third):
        assert await proxied_status(http, gateway.url, pair["access_token"]) == 200

    async with await logout(http, first.url, pair["refresh_token"]) as response:
        assert response.status == 204
    started = time.monotonic()
    for gateway in (first, second, third):
        while await proxied_status(http, gateway.url, pair["access_token"]) != 401:
            assert time.monotonic() - started < 1.0, "revocation took over 1 s"
            await asyncio.sleep(0.01)
