"""The attack battery against access tokens, for HS256, EdDSA and RS256.

Every forged, misused or malformed token is a 401 and never reaches the
upstream; key rotation by kid keeps old tokens valid until they expire.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from tests.client import bearer, new_session
from tests.conftest import Gateway, GatewayFactory
from tests.recorder import Recorder
from tests.servers import TEST_SECRET


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: dict[str, Any]) -> str:
    return b64(json.dumps(value).encode())


def pem(key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture(params=["HS256", "EdDSA", "RS256"])
def signed(
    request: pytest.FixtureRequest,
    start_gateway: GatewayFactory,
    recorder: Recorder,
    tmp_path: Path,
) -> tuple[Gateway, Any]:
    """A gateway per algorithm, with issuer and audience set, and its key."""
    settings = {"jwt_issuer": "https://gw.test", "jwt_audience": "api"}
    algorithm = request.param
    key: Any = TEST_SECRET
    if algorithm != "HS256":
        key = (
            ed25519.Ed25519PrivateKey.generate()
            if algorithm == "EdDSA"
            else rsa.generate_private_key(public_exponent=65537, key_size=2048)
        )
        path = tmp_path / f"{algorithm}.pem"
        path.write_bytes(pem(key))
        settings |= {"jwt_algorithm": algorithm, "jwt_private_key_file": str(path)}
    return start_gateway("memory://", recorder.url, **settings), key


def battery(
    algorithm: str, key: Any, real: str, claims: dict[str, Any]
) -> dict[str, str]:
    """Bad tokens, each built from the attack it stands for."""
    header = jwt.get_unverified_header(real)
    head, body, sig = real.split(".")
    now = int(time.time())

    def signed(payload: dict[str, Any], **extra: Any) -> str:
        return jwt.encode(payload, key, algorithm, headers={**header, **extra})

    repeated_sub = json.dumps(claims)[:-1].encode() + b', "sub": "x"}'
    public = TEST_SECRET.encode() if algorithm == "HS256" else public_pem(key)
    confused = f"{segment({'alg': 'HS256', 'typ': 'JWT'})}.{body}"
    mac = hmac.new(public, confused.encode(), hashlib.sha256).digest()
    tokens = {
        f"alg {name}": f"{segment({'alg': name, 'typ': 'JWT'})}.{body}."
        for name in ("none", "None", "NONE", "nOnE")
    }
    tokens |= {
        "expired": signed(claims | {"iat": now - 2000, "exp": now - 1000}),
        "not yet valid": signed(claims | {"nbf": now + 1000}),
        "wrong issuer": signed(claims | {"iss": "https://evil.test"}),
        "wrong audience": signed(claims | {"aud": "other"}),
        "no issuer": signed({k: v for k, v in claims.items() if k != "iss"}),
        "no sub": signed({k: v for k, v in claims.items() if k != "sub"}),
        "numeric sub": signed(claims | {"sub": 7}),
        "signature stripped": f"{head}.{body}.",
        "tampered payload": f"{head}.{segment(claims | {'sub': 'x'})}.{sig}",
        "jku header": signed(claims, jku="https://evil.test/jwks.json"),
        "x5u header": signed(claims, x5u="https://evil.test/cert.pem"),
        "duplicate header key": (
            b64(b'{"alg":"' + algorithm.encode() + b'","alg":"none"}')
            + f".{body}.{sig}"
        ),
        "duplicate payload key": f"{head}.{b64(repeated_sub)}.{sig}",
        "padded segments": f"{head}==.{body}.{sig}",
        "not base64url": f"{head}.{body}+/.{sig}",
        "huge": "a" * 100_000,
        "garbage": "not-a-token",
    }
    if algorithm != "HS256":
        tokens["HS256 with the public key"] = f"{confused}.{b64(mac)}"
        for kid in ("../../etc/passwd", "https://evil.test/k", "' OR 1=1 --", "x"):
            tokens[f"kid {kid}"] = signed(claims, kid=kid)
    return tokens


async def test_every_attack_is_a_401_and_reaches_nothing(
    signed: tuple[Gateway, Any], recorder: Recorder, http: aiohttp.ClientSession
) -> None:
    """Forged, expired, misdirected and malformed access tokens all get 401."""
    gateway, key = signed
    pair = await new_session(http, gateway.url, "target")
    real = pair["access_token"]
    algorithm = jwt.get_unverified_header(real)["alg"]
    claims = jwt.decode(real, options={"verify_signature": False})
    assert claims["iss"] == "https://gw.test"
    assert claims["aud"] == "api"
    async with http.get(f"{gateway.url}/ok", headers=bearer(real)) as response:
        assert response.status == 200
    reached = len(recorder.received)

    tokens = battery(algorithm, key, real, claims)
    tokens["refresh token as access"] = pair["refresh_token"]
    for name, token in tokens.items():
        async with http.get(f"{gateway.url}/x", headers=bearer(token)) as response:
            assert response.status == 401, name
    async with http.post(
        f"{gateway.url}/user/refresh-token", headers=bearer(real)
    ) as response:
        assert response.status == 401, "access token as refresh"
    assert len(recorder.received) == reached


async def test_jwks_publishes_what_verifies(
    signed: tuple[Gateway, Any], http: aiohttp.ClientSession
) -> None:
    """Upstreams can verify tokens themselves with the published keys."""
    gateway, _ = signed
    pair = await new_session(http, gateway.url, "verifier")
    async with http.get(f"{gateway.url}/.well-known/jwks.json") as response:
        keys = (await response.json())["keys"]
    header = jwt.get_unverified_header(pair["access_token"])
    if header["alg"] == "HS256":
        assert keys == []
        return
    (jwk,) = keys
    assert jwk["kid"] == header["kid"]
    public = jwt.PyJWK(jwk).key
    claims = jwt.decode(
        pair["access_token"], public, algorithms=[header["alg"]], audience="api"
    )
    assert claims["sid"]


async def test_key_rotation_keeps_old_tokens_until_they_expire(
    start_gateway: GatewayFactory, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """A new key signs, the old one still verifies what it signed."""
    old, new = (
        ed25519.Ed25519PrivateKey.generate(),
        ed25519.Ed25519PrivateKey.generate(),
    )
    (tmp_path / "old.pem").write_bytes(pem(old))
    (tmp_path / "new.pem").write_bytes(pem(new))
    (tmp_path / "old.pub").write_bytes(public_pem(old))
    before = start_gateway(
        jwt_algorithm="EdDSA", jwt_private_key_file=str(tmp_path / "old.pem")
    )
    pair = await new_session(http, before.url, "rotated")
    after = start_gateway(
        jwt_algorithm="EdDSA",
        jwt_private_key_file=str(tmp_path / "new.pem"),
        jwt_verify_key_files=str(tmp_path / "old.pub"),
    )
    stranger = start_gateway(
        jwt_algorithm="EdDSA", jwt_private_key_file=str(tmp_path / "new.pem")
    )
    token = pair["access_token"]
    async with http.get(f"{after.url}/resource", headers=bearer(token)) as response:
        assert response.status == 200
    async with http.get(f"{stranger.url}/resource", headers=bearer(token)) as r:
        assert r.status == 401
    async with http.get(f"{after.url}/.well-known/jwks.json") as response:
        kids = [key["kid"] for key in (await response.json())["keys"]]
    assert len(kids) == 2
    assert kids[1] == jwt.get_unverified_header(token)["kid"]
