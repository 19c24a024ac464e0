"""Gateways on PostgreSQL: real processes sharing one users table, as
gateways on separate hosts would."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.client import PASSWORD, login, new_session, register
from tests.conftest import GatewayFactory


async def test_gateways_share_users_on_postgres(
    start_gateway: GatewayFactory, postgres_url: str, http: aiohttp.ClientSession
) -> None:
    """A user registered on one gateway logs in on the other; 20 racing
    registrations of one name, spread over both, give one 201 and nineteen
    409."""
    first = start_gateway(database_url=postgres_url)
    second = start_gateway(database_url=postgres_url, database_pool_size="3")

    pair = await new_session(http, first.url, "Joe")
    assert pair["token_type"] == "Bearer"
    async with await login(http, second.url, "joe") as response:
        assert response.status == 200

    async def attempt(n: int) -> int:
        gateway = (first, second)[n % 2]
        name = ("Racer", "racer", "ＲＡＣＥＲ")[n % 3]
        async with await register(http, gateway.url, name, f"{PASSWORD}{n}") as r:
            return r.status

    statuses = sorted(await asyncio.gather(*(attempt(n) for n in range(20))))
    assert statuses == [201] + [409] * 19
    assert await first.logged("database migrated")
    assert "database migrated" not in second.output()
