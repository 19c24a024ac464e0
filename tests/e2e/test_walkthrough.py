"""The README's walk-through and the seed's flow, on every store backend."""

from __future__ import annotations

import asyncio
import base64
import json

import aiohttp

from tests.client import (
    PASSWORD,
    bearer,
    login,
    logout,
    new_session,
    refresh,
    register,
)
from tests.conftest import Gateway


def jwt_payload(token: str) -> dict[str, object]:
    part = token.split(".")[1]
    decoded: dict[str, object] = json.loads(
        base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    )
    return decoded


async def test_register_login_resource_refresh_logout(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    """The five steps answer 201, 200, 200, 200, 204 and the token dies."""
    base = gateway.url
    async with await register(http, base, "joe") as response:
        assert response.status == 201
        user = await response.json()
    assert user["username"] == "joe"

    async with await login(http, base, "joe") as response:
        assert response.status == 200
        pair = await response.json()
    assert pair["token_type"] == "Bearer"
    assert pair["expires_in"] == 900

    async with http.get(
        f"{base}/resource", headers=bearer(pair["access_token"])
    ) as response:
        assert response.status == 200
        assert (await response.json())["user_id"] == user["id"]

    async with await refresh(http, base, pair["refresh_token"]) as response:
        assert response.status == 200
        renewed = await response.json()
    assert renewed["refresh_token"] != pair["refresh_token"]

    async with await logout(http, base, renewed["refresh_token"]) as response:
        assert response.status == 204
    async with await refresh(http, base, renewed["refresh_token"]) as response:
        assert response.status == 401


async def test_tokens_have_the_contract_shape(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    """sub is the user id, exp - iat is access_ttl, refresh is <uid>__<secret>."""
    async with await register(http, gateway.url, "shape") as response:
        user = await response.json()
    async with await login(http, gateway.url, "shape") as response:
        pair = await response.json()

    claims = jwt_payload(pair["access_token"])
    assert claims["sub"] == user["id"]
    assert isinstance(claims["sid"], str)
    assert isinstance(claims["exp"], int)
    assert isinstance(claims["iat"], int)
    assert claims["exp"] - claims["iat"] == 900
    owner, _, secret = pair["refresh_token"].partition("__")
    assert owner == user["id"]
    assert len(secret) >= 43


async def test_rotated_refresh_token_is_dead(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    """After a refresh the old token gets 401 and the new one keeps working."""
    pair = await new_session(http, gateway.url, "rotor")
    async with await refresh(http, gateway.url, pair["refresh_token"]) as response:
        renewed = await response.json()

    async with await refresh(http, gateway.url, pair["refresh_token"]) as response:
        assert response.status == 401
        assert response.content_type == "application/problem+json"
    async with await refresh(http, gateway.url, renewed["refresh_token"]) as response:
        assert response.status == 200


async def test_concurrent_refreshes_with_one_token_let_one_through(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    """Of 30 simultaneous refreshes with one token exactly one succeeds."""
    pair = await new_session(http, gateway.url, "racer")

    async def attempt() -> tuple[int, dict[str, object]]:
        async with await refresh(http, gateway.url, pair["refresh_token"]) as resp:
            return resp.status, await resp.json()

    results = await asyncio.gather(*(attempt() for _ in range(30)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] + [401] * 29

    winner = next(body for status, body in results if status == 200)
    async with await refresh(http, gateway.url, pair["refresh_token"]) as response:
        assert response.status == 401
    async with await refresh(http, gateway.url, str(winner["refresh_token"])) as resp:
        assert resp.status == 200


async def test_concurrent_registrations_of_one_name_create_one_user(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    """20 racing registrations of one name: one 201, nineteen 409."""

    async def attempt(n: int) -> int:
        async with await register(http, gateway.url, "popular", f"{PASSWORD}{n}") as r:
            return r.status

    statuses = sorted(await asyncio.gather(*(attempt(n) for n in range(20))))
    assert statuses == [201] + [409] * 19


async def test_logout_is_idempotent(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    """Logging out a token that is already gone still answers 204."""
    pair = await new_session(http, gateway.url, "leaver")
    for _ in range(2):
        async with await logout(http, gateway.url, pair["refresh_token"]) as response:
            assert response.status == 204


async def test_each_login_is_its_own_session(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    """Logging out one device leaves another device's refresh token alive."""
    phone = await new_session(http, gateway.url, "twodevices")
    async with await login(http, gateway.url, "twodevices") as response:
        laptop = await response.json()

    async with await logout(http, gateway.url, phone["refresh_token"]) as response:
        assert response.status == 204
    async with await refresh(http, gateway.url, laptop["refresh_token"]) as response:
        assert response.status == 200
    async with await refresh(http, gateway.url, phone["refresh_token"]) as response:
        assert response.status == 401
