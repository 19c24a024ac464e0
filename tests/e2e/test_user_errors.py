"""Bad input to /user/* gets a clear 4xx problem and changes nothing."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tests.client import PASSWORD, login, new_session, register
from tests.conftest import GatewayFactory
from tests.servers import redis_server

PROBLEM = "application/problem+json"


async def post_raw(
    http: aiohttp.ClientSession,
    url: str,
    body: bytes,
    content_type: str = "application/json",
) -> tuple[int, dict[str, object]]:
    async with http.post(url, data=body, headers={"Content-Type": content_type}) as r:
        assert r.content_type == PROBLEM
        problem: dict[str, object] = await r.json(content_type=PROBLEM)
        assert problem["status"] == r.status
        assert isinstance(problem["title"], str)
        return r.status, problem


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b'{"username": "ann", "password": ', "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b'{"username": "ann"}', "application/json", 400),
        (b'{"username": "ann", "password": 12345678}', "application/json", 400),
        (b'{"username": null, "password": "long enough"}', "application/json", 400),
        (b'{"username": "ann", "password": "short"}', "application/json", 400),
        (b'{"username": "a", "password": "long enough"}', "application/json", 400),
        (b'{"username": "a b", "password": "long enough"}', "application/json", 400),
        (
            b'{"username": "ann", "username": "bob", "password": "long enough"}',
            "application/json",
            400,
        ),
        (b"\xff\xfe", "application/json", 400),
        (
            b"username=ann&password=long+enough",
            "application/x-www-form-urlencoded",
            415,
        ),
        (b'{"username": "ann", "password": "long enough"}', "text/plain", 415),
    ],
)
async def test_register_rejects_bad_bodies(
    start_gateway: GatewayFactory,
    http: aiohttp.ClientSession,
    body: bytes,
    content_type: str,
    status: int,
) -> None:
    """Each malformed registration is refused with the documented status."""
    gateway = start_gateway()
    got, _ = await post_raw(http, f"{gateway.url}/user/register", body, content_type)
    assert got == status
    async with await login(http, gateway.url, "ann", "long enough") as response:
        assert response.status == 401


async def test_oversized_body_is_413(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    """A body past limits.json_body is refused before it is parsed."""
    gateway = start_gateway(limits_json_body="1024")
    body = b'{"username": "ann", "password": "' + b"x" * 2000 + b'"}'
    status, _ = await post_raw(http, f"{gateway.url}/user/register", body)
    assert status == 413

    async def chunked() -> object:
        yield body

    async with http.post(
        f"{gateway.url}/user/login",
        data=chunked(),
        headers={"Content-Type": "application/json"},
    ) as response:
        assert response.status == 413


async def test_taken_name_is_409_whatever_its_case_or_width(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    """Joe, joe and full-width ｊｏｅ are one account."""
    gateway = start_gateway()
    async with await register(http, gateway.url, "Joe") as response:
        assert response.status == 201
    for name in ("joe", "JOE", "ｊｏｅ"):
        async with await register(http, gateway.url, name) as response:
            assert response.status == 409
            assert response.content_type == PROBLEM
    async with await login(http, gateway.url, "ｊｏｅ") as response:
        assert response.status == 200


async def test_login_failures_look_the_same(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    """Unknown user and wrong password: same status, same body, similar time."""
    gateway = start_gateway(accounts_bcrypt_cost="10")
    await new_session(http, gateway.url, "known")

    async def attempt(name: str, password: str) -> tuple[int, bytes, float]:
        started = time.perf_counter()
        async with await login(http, gateway.url, name, password) as response:
            body = await response.read()
            return response.status, body, time.perf_counter() - started

    wrong = [await attempt("known", "wrong password") for _ in range(5)]
    unknown = [await attempt("nobody", "wrong password") for _ in range(5)]
    assert {(s, b) for s, b, _ in wrong} == {(s, b) for s, b, _ in unknown}
    assert wrong[0][0] == 401
    slow_wrong = sorted(t for _, _, t in wrong)[2]
    slow_unknown = sorted(t for _, _, t in unknown)[2]
    # Both paths run one bcrypt check; the medians stay within a factor of 2
    # on a loaded machine (the real gap is far smaller).
    assert 0.5 < slow_wrong / slow_unknown < 2.0


async def test_store_outage_is_503_and_heals_by_itself(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    """Store down: /user/* answers 503 with Retry-After, the proxy keeps
    serving valid access tokens, and all recovers when the store is back."""
    store = redis_server().start()
    gateway = start_gateway(f"redis://127.0.0.1:{store.port}/0", store_timeout="1")
    pair = await new_session(http, gateway.url, "outage")
    auth = {"Authorization": f"Bearer {pair['access_token']}"}

    store.stop()
    try:
        async with await login(http, gateway.url, "outage") as response:
            assert response.status == 503
            assert response.headers["Retry-After"].isdigit()
            assert response.content_type == PROBLEM
        async with http.post(
            f"{gateway.url}/user/refresh-token",
            headers={"Authorization": f"Bearer {pair['refresh_token']}"},
        ) as response:
            assert response.status == 503
        async with http.get(f"{gateway.url}/resource", headers=auth) as response:
            assert response.status == 200
    finally:
        store.start()

    # The server came back empty (no persistence): old sessions are gone,
    # new logins work without restarting the gateway.
    for _ in range(50):
        async with await login(http, gateway.url, "outage") as response:
            if response.status == 200:
                break
        await asyncio.sleep(0.1)
    assert response.status == 200
    store.stop()


async def test_errors_never_leak_internals(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    """Problem bodies carry no traceback, SQL or store text."""
    gateway = start_gateway()
    await new_session(http, gateway.url, "leaky")
    bodies = []
    async with await register(http, gateway.url, "leaky") as response:
        bodies.append(await response.text())
    async with await login(http, gateway.url, "leaky", PASSWORD + "x") as response:
        bodies.append(await response.text())
    for body in bodies:
        for marker in ("Traceback", "sqlite", "UNIQUE", "IntegrityError", "redis"):
            assert marker not in body


async def test_username_punctuation_is_a_setting(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    """With only '-' allowed, a dotted name is refused and a dashed one is not."""
    gateway = start_gateway(accounts_username_punctuation="-")
    async with await register(http, gateway.url, "first.last") as response:
        assert response.status == 400
    async with await register(http, gateway.url, "first-last") as response:
        assert response.status == 201
