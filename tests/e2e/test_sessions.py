"""A user's sessions: listing, ending one or all, reuse, caps, password change,
and access tokens dying with their session on every gateway."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from tests.client import (
    PASSWORD,
    bearer,
    login,
    login_as,
    logout,
    new_session,
    proxied_status,
    refresh,
)
from tests.conftest import Gateway, GatewayFactory
from tests.relay import relay_to


async def sessions_of(
    http: aiohttp.ClientSession, base: str, access: str
) -> tuple[int, Any]:
    async with http.get(f"{base}/user/sessions", headers=bearer(access)) as response:
        return response.status, await response.json(content_type=None)


async def test_sessions_are_listed_with_their_details(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    """Each login shows up with its agent, address, times and expiry; the
    caller's own session is marked current."""
    await new_session(http, gateway.url, "lister")
    phone = await login_as(http, gateway.url, "lister", "Phone/1.0")
    laptop = await login_as(http, gateway.url, "lister", "Laptop/2.0")

    status, listed = await sessions_of(http, gateway.url, laptop["access_token"])
    assert status == 200
    assert len(listed) == 3
    by_agent = {entry["user_agent"]: entry for entry in listed}
    assert by_agent["Laptop/2.0"]["current"] is True
    assert by_agent["Phone/1.0"]["current"] is False
    for entry in listed:
        assert set(entry) == {
            "id",
            "created_at",
            "last_used_at",
            "expires_in",
            "user_agent",
            "ip",
            "current",
        }
        assert entry["ip"] == "127.0.0.1"
        assert 604790 <= entry["expires_in"] <= 604800
        assert entry["created_at"].endswith("Z")
    assert phone["refresh_token"].split("__")[1].startswith(by_agent["Phone/1.0"]["id"])


async def test_revoking_one_session_kills_its_tokens_only(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    """DELETE /user/sessions/{id}: that session's refresh and access tokens
    die at once, the caller's own keep working."""
    mine = await new_session(http, gateway.url, "revoker")
    other = await login_as(http, gateway.url, "revoker", "Other/1.0")
    _, listed = await sessions_of(http, gateway.url, mine["access_token"])
    target = next(entry["id"] for entry in listed if not entry["current"])

    async with http.delete(
        f"{gateway.url}/user/sessions/{target}", headers=bearer(mine["access_token"])
    ) as response:
        assert response.status == 204

    async with await refresh(http, gateway.url, other["refresh_token"]) as response:
        assert response.status == 401
    assert await proxied_status(http, gateway.url, other["access_token"]) == 401
    assert await proxied_status(http, gateway.url, mine["access_token"]) == 200
    _, listed = await sessions_of(http, gateway.url, mine["access_token"])
    assert [entry["current"] for entry in listed] == [True]


async def test_someone_elses_session_is_404(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    """Another user's session id, an unknown one or a malformed one: 404."""
    alice = await new_session(http, gateway.url, "alice")
    bob = await new_session(http, gateway.url, "bobby")
    _, bobs = await sessions_of(http, gateway.url, bob["access_token"])

    for session_id in (bobs[0]["id"], "0" * 32, "not-an-id"):
        async with http.delete(
            f"{gateway.url}/user/sessions/{session_id}",
            headers=bearer(alice["access_token"]),
        ) as response:
            assert response.status == 404
    async with await refresh(http, gateway.url, bob["refresh_token"]) as response:
        assert response.status == 200


async def test_session_endpoints_need_a_valid_access_token(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    """No token, or a refresh token in its place: 401."""
    pair = await new_session(http, gateway.url, "noaccess")
    for headers in ({}, bearer(pair["refresh_token"])):
        async with http.get(f"{gateway.url}/user/sessions", headers=headers) as r:
            assert r.status == 401
        async with http.post(f"{gateway.url}/user/logout-all", headers=headers) as r:
            assert r.status == 401


async def test_logout_all_ends_every_session(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    """POST /user/logout-all: every refresh and access token of the user dies."""
    first = await new_session(http, gateway.url, "everywhere")
    second = await login_as(http, gateway.url, "everywhere", "Second/1.0")

    async with http.post(
        f"{gateway.url}/user/logout-all", headers=bearer(first["access_token"])
    ) as response:
        assert response.status == 204
    for pair in (first, second):
        async with await refresh(http, gateway.url, pair["refresh_token"]) as r:
            assert r.status == 401
        assert await proxied_status(http, gateway.url, pair["access_token"]) == 401


async def test_logout_kills_the_access_token_too(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    """After logout the session's access token is refused, not just expired."""
    pair = await new_session(http, gateway.url, "shortlived")
    assert await proxied_status(http, gateway.url, pair["access_token"]) == 200
    async with await logout(http, gateway.url, pair["refresh_token"]) as response:
        assert response.status == 204
    assert await proxied_status(http, gateway.url, pair["access_token"]) == 401


async def test_reuse_after_grace_revokes_the_session(
    start_gateway: GatewayFactory, store_url: str, http: aiohttp.ClientSession
) -> None:
    """A rotated-away token used after the grace window ends the session:
    the thief gets 401 and so does the successor it was copied from."""
    gateway = start_gateway(store_url, sessions_reuse_grace="0.3")
    pair = await new_session(http, gateway.url, "stolen")
    async with await refresh(http, gateway.url, pair["refresh_token"]) as response:
        successor = await response.json()
    await asyncio.sleep(0.5)

    async with await refresh(http, gateway.url, pair["refresh_token"]) as response:
        assert response.status == 401
    async with await refresh(http, gateway.url, successor["refresh_token"]) as r:
        assert r.status == 401
    assert await proxied_status(http, gateway.url, successor["access_token"]) == 401
    assert await gateway.logged("refresh token reuse detected")
    assert pair["refresh_token"] not in gateway.output()


async def test_retry_inside_grace_gets_the_same_successor(
    start_gateway: GatewayFactory, store_url: str, http: aiohttp.ClientSession
) -> None:
    """With reissue_in_grace on, a client that lost its refresh answer gets
    the same successor again: still one live refresh token."""
    gateway = start_gateway(store_url, sessions_reissue_in_grace="true")
    pair = await new_session(http, gateway.url, "flaky")
    async with await refresh(http, gateway.url, pair["refresh_token"]) as response:
        first = await response.json()
    async with await refresh(http, gateway.url, pair["refresh_token"]) as response:
        assert response.status == 200
        again = await response.json()

    assert again["refresh_token"] == first["refresh_token"]
    async with await refresh(http, gateway.url, first["refresh_token"]) as response:
        assert response.status == 200
    async with await refresh(http, gateway.url, first["refresh_token"]) as response:
        assert response.status == 200  # still inside the grace window


async def test_session_cap_evicts_the_least_recently_used(
    start_gateway: GatewayFactory, store_url: str, http: aiohttp.ClientSession
) -> None:
    """With max_per_user 2, a third login ends the session used longest ago."""
    gateway = start_gateway(store_url, sessions_max_per_user="2")
    oldest = await new_session(http, gateway.url, "capped")
    # Use times are kept in milliseconds: keep the steps apart so that
    # "least recently used" is never a tie.
    await asyncio.sleep(0.02)
    middle = await login(http, gateway.url, "capped")
    middle_pair = await middle.json()
    await asyncio.sleep(0.02)
    async with await refresh(http, gateway.url, oldest["refresh_token"]) as response:
        oldest = await response.json()
    await asyncio.sleep(0.02)
    await login_as(http, gateway.url, "capped", "Third/1.0")

    async with await refresh(http, gateway.url, middle_pair["refresh_token"]) as r:
        assert r.status == 401
    assert await proxied_status(http, gateway.url, middle_pair["access_token"]) == 401
    async with await refresh(http, gateway.url, oldest["refresh_token"]) as r:
        assert r.status == 200


async def test_idle_sessions_expire(
    start_gateway: GatewayFactory, store_url: str, http: aiohttp.ClientSession
) -> None:
    """A session not refreshed for sessions.idle_ttl is gone."""
    gateway = start_gateway(store_url, sessions_idle_ttl="1")
    pair = await new_session(http, gateway.url, "sleepy")
    await asyncio.sleep(2.1)
    async with await refresh(http, gateway.url, pair["refresh_token"]) as response:
        assert response.status == 401


async def test_password_change_ends_the_other_sessions(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    """POST /user/password: policy and current password checked; on success
    the other sessions die (access tokens too) and the caller's lives on."""
    mine = await new_session(http, gateway.url, "changer")
    other = await login_as(http, gateway.url, "changer", "Other/1.0")
    url = f"{gateway.url}/user/password"
    auth = bearer(mine["access_token"])

    wrong = {"current_password": "nope nope", "new_password": "brand new secret"}
    async with http.post(url, json=wrong, headers=auth) as response:
        assert response.status == 401
    weak = {"current_password": PASSWORD, "new_password": "short"}
    async with http.post(url, json=weak, headers=auth) as response:
        assert response.status == 400
    good = {"current_password": PASSWORD, "new_password": "brand new secret"}
    async with http.post(url, json=good, headers=auth) as response:
        assert response.status == 204

    async with await refresh(http, gateway.url, other["refresh_token"]) as response:
        assert response.status == 401
    assert await proxied_status(http, gateway.url, other["access_token"]) == 401
    assert await proxied_status(http, gateway.url, mine["access_token"]) == 200
    async with await refresh(http, gateway.url, mine["refresh_token"]) as response:
        assert response.status == 200
    async with await login(http, gateway.url, "changer") as response:
        assert response.status == 401
    async with await login(http, gateway.url, "changer", "brand new secret") as r:
        assert r.status == 200


async def test_client_address_comes_from_trusted_proxies_only(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    """X-Forwarded-For names the session's address only when the peer is a
    configured trusted proxy."""
    spoof = {"X-Forwarded-For": "198.51.100.7"}
    untrusting = start_gateway()
    trusting = start_gateway(listen_trusted_proxies="127.0.0.1/32")
    for gateway, expected in ((untrusting, "127.0.0.1"), (trusting, "198.51.100.7")):
        await new_session(http, gateway.url, "forwarded")
        async with http.post(
            f"{gateway.url}/user/login",
            json={"username": "forwarded", "password": PASSWORD},
            headers=spoof,
        ) as response:
            access = (await response.json())["access_token"]
        _, listed = await sessions_of(http, gateway.url, access)
        current = next(entry for entry in listed if entry["current"])
        assert current["ip"] == expected


async def test_logout_on_one_gateway_stops_the_token_on_another(
    start_gateway: GatewayFactory, redis_url: str, http: aiohttp.ClientSession
) -> None:
    """Two gateways on one redis-server: a logout on A makes the access token
    fail on B within one second, with no store lookup per request."""
    first = start_gateway(redis_url)
    second = start_gateway(redis_url)
    await asyncio.sleep(0.3)  # both subscribed to the revocation feed
    pair = await new_session(http, first.url, "roaming")
    assert await proxied_status(http, second.url, pair["access_token"]) == 200

    async with await logout(http, first.url, pair["refresh_token"]) as response:
        assert response.status == 204
    started = time.monotonic()
    while await proxied_status(http, second.url, pair["access_token"]) == 200:
        assert time.monotonic() - started < 1.0, "revocation took over a second"
        await asyncio.sleep(0.01)


async def test_a_restarted_gateway_loads_revocations_it_missed(
    start_gateway: GatewayFactory, redis_url: str, http: aiohttp.ClientSession
) -> None:
    """A gateway that starts after a logout refuses that access token from its
    very first request."""
    first = start_gateway(redis_url)
    pair = await new_session(http, first.url, "latecomer")
    async with await logout(http, first.url, pair["refresh_token"]) as response:
        assert response.status == 204

    late = start_gateway(redis_url)
    assert await proxied_status(http, late.url, pair["access_token"]) == 401


async def test_a_silently_dropped_feed_is_noticed_and_rebuilt(
    start_gateway: GatewayFactory, redis_url: str, http: aiohttp.ClientSession
) -> None:
    """A revocation feed whose connection goes silent (no reset, no error)
    is noticed by its heartbeat, and the backlog then catches the gateway
    up: the logged-out token is refused within seconds, not never."""
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    async with relay_to(port) as relay:
        # Started from a thread: the relay runs on this test's event loop.
        behind_relay = await asyncio.to_thread(
            start_gateway, f"redis://127.0.0.1:{relay.port}/0"
        )
        direct = start_gateway(redis_url)
        pair = await new_session(http, direct.url, "forgotten")
        assert await proxied_status(http, behind_relay.url, pair["access_token"]) == 200

        relay.silence_existing()
        async with await logout(http, direct.url, pair["refresh_token"]) as r:
            assert r.status == 204
        started = time.monotonic()
        while await proxied_status(http, behind_relay.url, pair["access_token"]) == 200:
            assert time.monotonic() - started < 15, "the silent feed went unnoticed"
            await asyncio.sleep(0.2)
