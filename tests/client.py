"""Small helpers that speak the gateway's HTTP API, for the tests."""

from __future__ import annotations

from typing import Any

import aiohttp

PASSWORD = "correct horse battery"


async def register(
    http: aiohttp.ClientSession, base: str, username: str, password: str = PASSWORD
) -> aiohttp.ClientResponse:
    return await http.post(
        f"{base}/user/register", json={"username": username, "password": password}
    )


async def login(
    http: aiohttp.ClientSession, base: str, username: str, password: str = PASSWORD
) -> aiohttp.ClientResponse:
    return await http.post(
        f"{base}/user/login", json={"username": username, "password": password}
    )


async def new_session(
    http: aiohttp.ClientSession, base: str, username: str
) -> dict[str, Any]:
    """Register *username* and log in once; return the token pair."""
    async with await register(http, base, username) as response:
        assert response.status == 201, await response.text()
    async with await login(http, base, username) as response:
        assert response.status == 200, await response.text()
        pair: dict[str, Any] = await response.json()
    return pair


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def refresh(
    http: aiohttp.ClientSession, base: str, refresh_token: str
) -> aiohttp.ClientResponse:
    return await http.post(f"{base}/user/refresh-token", headers=bearer(refresh_token))


async def logout(
    http: aiohttp.ClientSession, base: str, refresh_token: str
) -> aiohttp.ClientResponse:
    return await http.post(f"{base}/user/logout", headers=bearer(refresh_token))


async def login_as(
    http: aiohttp.ClientSession, base: str, username: str, agent: str
) -> dict[str, Any]:
    """Log in with a given User-Agent, as another device would."""
    async with http.post(
        f"{base}/user/login",
        json={"username": username, "password": PASSWORD},
        headers={"User-Agent": agent},
    ) as response:
        assert response.status == 200
        pair: dict[str, Any] = await response.json()
    return pair


async def proxied_status(http: aiohttp.ClientSession, base: str, access: str) -> int:
    """The status of GET /resource through the gateway with *access*."""
    async with http.get(f"{base}/resource", headers=bearer(access)) as response:
        return response.status
