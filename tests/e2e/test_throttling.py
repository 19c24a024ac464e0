"""Password guessing is slowed down, without locking owners out."""

from __future__ import annotations

import sqlite3

import aiohttp

from tests.client import PASSWORD, bearer, login, new_session, register
from tests.conftest import GatewayFactory

LIMITS = {
    "throttle_login_attempts": "3",
    "throttle_login_refill": "60",
    "listen_trusted_proxies": "127.0.0.1/32",
}


async def login_from(
    http: aiohttp.ClientSession, base: str, address: str, password: str
) -> aiohttp.ClientResponse:
    return await http.post(
        f"{base}/user/login",
        json={"username": "guarded", "password": password},
        headers={"X-Forwarded-For": address},
    )


async def test_failed_logins_end_in_429_for_that_address_only(
    start_gateway: GatewayFactory, store_url: str, http: aiohttp.ClientSession
) -> None:
    """After the allowed failures, even the right password from that address
    is 429 with Retry-After; the owner elsewhere still gets in."""
    gateway = start_gateway(store_url, **LIMITS)
    await new_session(http, gateway.url, "guarded")
    attacker, owner = "203.0.113.66", "198.51.100.1"

    for _ in range(3):
        async with await login_from(http, gateway.url, attacker, "wrong guess") as r:
            assert r.status == 401
    async with await login_from(http, gateway.url, attacker, PASSWORD) as response:
        assert response.status == 429
        assert int(response.headers["Retry-After"]) > 0
        assert response.content_type == "application/problem+json"
    async with await login_from(http, gateway.url, owner, PASSWORD) as response:
        assert response.status == 200


async def test_a_success_resets_the_count(
    start_gateway: GatewayFactory, store_url: str, http: aiohttp.ClientSession
) -> None:
    """Failures followed by a success start counting from zero again."""
    gateway = start_gateway(store_url, **LIMITS)
    await new_session(http, gateway.url, "guarded")
    for _ in range(2):
        async with await login_from(http, gateway.url, "192.0.2.9", "typo") as r:
            assert r.status == 401
    async with await login_from(http, gateway.url, "192.0.2.9", PASSWORD) as r:
        assert r.status == 200
    for _ in range(3):
        async with await login_from(http, gateway.url, "192.0.2.9", "typo") as r:
            assert r.status == 401


async def test_wrong_current_passwords_are_throttled_like_logins(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    """Guessing the current password on /user/password ends in 429."""
    gateway = start_gateway(**LIMITS)
    pair = await new_session(http, gateway.url, "changing")
    body = {"current_password": "guess guess", "new_password": "whatever123"}
    statuses = []
    for _ in range(4):
        async with http.post(
            f"{gateway.url}/user/password",
            json=body,
            headers=bearer(pair["access_token"]),
        ) as response:
            statuses.append(response.status)
    assert statuses == [401, 401, 401, 429]


async def test_probing_for_taken_names_is_throttled(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    """Registration says 409 for a taken name, but not forever to one address,
    and once throttled a free name gets the same 429: no oracle is left."""
    gateway = start_gateway(throttle_address_attempts="3", throttle_address_refill="60")
    async with await register(http, gateway.url, "popular") as response:
        assert response.status == 201
    statuses = []
    for name in ("popular", "popular", "popular", "unused-name"):
        async with await register(http, gateway.url, name) as response:
            statuses.append(response.status)
    assert statuses == [409, 409, 429, 429]


async def test_weaker_hashes_are_upgraded_on_login(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    """A hash made at a lower bcrypt cost is redone at the current cost the
    next time its owner logs in."""
    first = start_gateway()
    async with await register(http, first.url, "oldhash") as response:
        assert response.status == 201
    database = first.env["GATEWAY_DATABASE_PATH"]
    later = start_gateway(database_path=database, accounts_bcrypt_cost="5")
    async with await login(http, later.url, "oldhash") as response:
        assert response.status == 200
    with sqlite3.connect(database) as connection:
        (stored,) = connection.execute(
            "SELECT password_hash FROM users WHERE username = 'oldhash'"
        ).fetchone()
    assert stored.startswith("$2b$05$")
    async with await login(http, later.url, "oldhash") as response:
        assert response.status == 200
