"""Forged, expired and misused access tokens get 401 and reach nothing."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import aiohttp
import jwt
import pytest

from tests.client import bearer, new_session
from tests.conftest import Gateway, GatewayFactory
from tests.recorder import Recorder
from tests.servers import TEST_SECRET


@pytest.fixture
def proxy(start_gateway: GatewayFactory, recorder: Recorder) -> Gateway:
    return start_gateway("memory://", recorder.url)


def b64(data: dict[str, object]) -> str:
    raw = json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def forged_tokens(real: str, user_id: str, session_id: str) -> dict[str, str]:
    now = int(time.time())
    claims = {"sub": user_id, "sid": session_id, "iat": now, "exp": now + 900}
    header, payload, signature = real.split(".")
    other = dict(claims, sub="00000000-0000-7000-8000-000000000000")
    tampered = f"{header}.{b64(other)}.{signature}"
    unsigned = {
        spelling: f"{b64({'alg': spelling, 'typ': 'JWT'})}.{b64(claims)}."
        for spelling in ("none", "None", "NONE", "nOnE")
    }
    return {
        "expired": jwt.encode(
            dict(claims, iat=now - 1000, exp=now - 100), TEST_SECRET, "HS256"
        ),
        "tampered": tampered,
        "foreign secret": jwt.encode(claims, "another-secret-" * 4, "HS256"),
        "no sub": jwt.encode(
            {k: v for k, v in claims.items() if k != "sub"}, TEST_SECRET, "HS256"
        ),
        "numeric sub": jwt.encode(dict(claims, sub=42), TEST_SECRET, "HS256"),
        "no exp": jwt.encode(
            {k: v for k, v in claims.items() if k != "exp"}, TEST_SECRET, "HS256"
        ),
        "signature stripped": f"{header}.{payload}.",
        "garbage": "not.a.token",
        "huge": "a" * 100_000,
        **{f"alg {name}": token for name, token in unsigned.items()},
    }


async def test_forged_and_expired_access_tokens_are_refused(
    proxy: Gateway, recorder: Recorder, http: aiohttp.ClientSession
) -> None:
    """Each bad token is a 401 with a Bearer challenge; the upstream sees none."""
    pair = await new_session(http, proxy.url, "victim")
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    calls_after_login = len(recorder.received)

    tokens = forged_tokens(pair["access_token"], claims["sub"], claims["sid"])
    tokens["refresh as access"] = pair["refresh_token"]
    for name, token in tokens.items():
        async with http.get(f"{proxy.url}/resource", headers=bearer(token)) as resp:
            assert resp.status == 401, name
            assert resp.headers["WWW-Authenticate"].startswith("Bearer"), name
    assert len(recorder.received) == calls_after_login


async def test_access_token_is_not_a_refresh_token(
    proxy: Gateway, http: aiohttp.ClientSession
) -> None:
    """Presenting the access token to refresh-token is a 401."""
    pair = await new_session(http, proxy.url, "mixup")
    async with http.post(
        f"{proxy.url}/user/refresh-token", headers=bearer(pair["access_token"])
    ) as response:
        assert response.status == 401


async def test_a_remembered_token_still_expires(
    start_gateway: GatewayFactory, recorder: Recorder, http: aiohttp.ClientSession
) -> None:
    """A token the gateway has already verified, and so remembers, is still
    refused once it expires (its session ending is covered in
    test_sessions.py, where tokens are used before the logout)."""
    gateway = start_gateway(
        "memory://", recorder.url, jwt_access_ttl="1", jwt_leeway="0"
    )
    pair = await new_session(http, gateway.url, "ephemeral")
    async with http.get(
        f"{gateway.url}/x", headers=bearer(pair["access_token"])
    ) as response:
        assert response.status == 200
    await asyncio.sleep(2.1)
    async with http.get(
        f"{gateway.url}/x", headers=bearer(pair["access_token"])
    ) as response:
        assert response.status == 401
