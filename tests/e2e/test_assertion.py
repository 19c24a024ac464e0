"""Proof of passage: an upstream can tell a request came through the gateway."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.client import bearer, new_session
from tests.conftest import Gateway, GatewayFactory
from tests.rawhttp import raw_request
from tests.recorder import Recorder


@pytest.fixture
def asserting(
    start_gateway: GatewayFactory, recorder: Recorder, tmp_path: Path
) -> Gateway:
    key = ed25519.Ed25519PrivateKey.generate()
    path = tmp_path / "signing.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    config = """
routes:
  - {prefix: /billing/, assertion: true, assertion_audience: billing}
  - {prefix: /open/, public: true, assertion: true}
"""
    return start_gateway(
        "memory://",
        recorder.url,
        config=config,
        jwt_algorithm="EdDSA",
        jwt_private_key_file=str(path),
    )


async def test_assertion_is_signed_bound_and_verifiable(
    asserting: Gateway, recorder: Recorder, http: aiohttp.ClientSession
) -> None:
    """The upstream gets a short-lived JWT for its audience, naming the user,
    the method and the path, verifiable with the published keys; a copy sent
    by the client never gets through."""
    pair = await new_session(http, asserting.url, "asserted")
    async with http.get(f"{asserting.url}/.well-known/jwks.json") as published:
        (jwk,) = (await published.json())["keys"]
    public = jwt.PyJWK(jwk).key
    user_id = jwt.decode(pair["access_token"], options={"verify_signature": False})[
        "sub"
    ]

    headers = [
        ("Authorization", f"Bearer {pair['access_token']}"),
        ("X-Gateway-Assertion", "forged"),
    ]
    response = await raw_request(asserting.url, "POST", "/billing/pay?x=1", headers)
    assert response.status == 200
    (token,) = recorder.received[-1].header_values("X-Gateway-Assertion")
    claims = jwt.decode(token, public, algorithms=["EdDSA"], audience="billing")
    assert claims["sub"] == user_id
    assert claims["htm"] == "POST"
    assert claims["htp"] == "/billing/pay"
    assert claims["exp"] - claims["iat"] == 60
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(token, public, algorithms=["EdDSA"], audience="other-service")

    async with http.get(
        f"{asserting.url}/plain", headers=bearer(pair["access_token"])
    ) as plain:
        assert plain.status == 200
    assert recorder.received[-1].header_values("X-Gateway-Assertion") == []


async def test_public_routes_get_an_assertion_without_a_subject(
    asserting: Gateway, recorder: Recorder, http: aiohttp.ClientSession
) -> None:
    """Even an anonymous request can carry proof that it passed the gateway."""
    async with http.get(f"{asserting.url}/open/page") as response:
        assert response.status == 200
    (token,) = recorder.received[-1].header_values("X-Gateway-Assertion")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert "sub" not in claims
    assert claims["aud"] == recorder.url
