"""Several upstreams by prefix, public paths, per-route timeouts and limits."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.client import bearer, new_session
from tests.conftest import Gateway, GatewayFactory
from tests.rawhttp import raw_request
from tests.recorder import Recorder, recording_upstream


@pytest.fixture
async def main_upstream() -> AsyncIterator[Recorder]:
    async with recording_upstream() as upstream:
        yield upstream


@pytest.fixture
async def api_upstream() -> AsyncIterator[Recorder]:
    async with recording_upstream() as upstream:
        yield upstream


@pytest.fixture
def routed(
    start_gateway: GatewayFactory, main_upstream: Recorder, api_upstream: Recorder
) -> Gateway:
    config = f"""
routes:
  - {{prefix: /api/, upstream: "{api_upstream.url}", timeout: 1}}
  - {{prefix: /api/raw/, upstream: "{api_upstream.url}", forward_authorization: true}}
  - {{prefix: /public/, public: true}}
  - {{prefix: /public/private/}}
  - {{prefix: /health, public: true}}
  - {{prefix: /upload, max_body: 1000}}
"""
    return start_gateway("memory://", main_upstream.url, config=config)


async def test_longest_prefix_picks_the_upstream(
    routed: Gateway,
    main_upstream: Recorder,
    api_upstream: Recorder,
    http: aiohttp.ClientSession,
) -> None:
    """/api/* goes to the API upstream, everything else to upstream.url."""
    pair = await new_session(http, routed.url, "router")
    auth = bearer(pair["access_token"])
    for path in ("/api/orders?id=7", "/other", "/api"):
        async with http.get(f"{routed.url}{path}", headers=auth) as response:
            assert response.status == 200
    assert [r.raw_path for r in api_upstream.received] == ["/api/orders?id=7"]
    assert [r.raw_path for r in main_upstream.received] == ["/other", "/api"]


async def test_public_routes_need_no_token_and_carry_no_identity(
    routed: Gateway, main_upstream: Recorder
) -> None:
    """A public path is served without a token; spoofed identity is stripped."""
    spoof = [("X-User-Id", "admin"), ("X_User_Id", "admin")]
    for path in ("/health", "/public/logo.png"):
        response = await raw_request(routed.url, "GET", path, spoof)
        assert response.status == 200
        received = main_upstream.received[-1]
        assert received.raw_path == path
        names = {name.lower().replace("_", "-") for name, _ in received.headers}
        assert "x-user-id" not in names
    near_miss = await raw_request(routed.url, "GET", "/healthz", [])
    assert near_miss.status == 401


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/public/..%2Fadmin", 401),
        ("/public/%2E%2E%2Fadmin", 401),
        ("/public//admin", 401),
        ("/public/..\\admin", 401),
        ("/public/%2e%2e/admin", 400),
        ("/health/..;/admin", 401),
        ("/public/;/private/secret", 401),
        ("/public/private;/secret", 401),
        ("/public/PRIVATE/secret", 401),
        ("/public/private%00/secret", 401),
        ("/public/private/secret", 401),
        ("/public/../admin", 400),
        ("/public/./x", 400),
    ],
)
async def test_ambiguous_paths_under_a_public_prefix_are_not_public(
    routed: Gateway, main_upstream: Recorder, path: str, status: int
) -> None:
    """Encoded slashes or dots and '//' cannot ride a public prefix (they need
    a token); dot segments are refused outright."""
    response = await raw_request(routed.url, "GET", path, [])
    assert response.status == status
    assert main_upstream.received == []


async def test_each_route_has_its_own_timeout(
    routed: Gateway, api_upstream: Recorder, http: aiohttp.ClientSession
) -> None:
    """The API route gives up after its 1 s; the default would wait 30 s."""
    pair = await new_session(http, routed.url, "impatient")
    started = time.monotonic()
    async with http.get(
        f"{routed.url}/api/finish/3", headers=bearer(pair["access_token"])
    ) as response:
        assert response.status == 504
    assert time.monotonic() - started < 2.5


async def test_authorization_is_forwarded_only_where_configured(
    routed: Gateway, api_upstream: Recorder, http: aiohttp.ClientSession
) -> None:
    """Authorization stays at the gateway unless the route passes it on."""
    pair = await new_session(http, routed.url, "forwarder")
    auth = bearer(pair["access_token"])
    async with http.get(f"{routed.url}/api/x", headers=auth):
        pass
    assert api_upstream.received[-1].header_values("Authorization") == []
    async with http.get(f"{routed.url}/api/raw/x", headers=auth):
        pass
    assert api_upstream.received[-1].header_values("Authorization") == [
        auth["Authorization"]
    ]


async def test_route_body_limit_is_413_before_the_upstream(
    routed: Gateway, main_upstream: Recorder, http: aiohttp.ClientSession
) -> None:
    """Past max_body: 413 whether the length is declared or streamed."""
    pair = await new_session(http, routed.url, "uploader")
    auth = bearer(pair["access_token"])
    async with http.post(
        f"{routed.url}/upload", data=b"x" * 2000, headers=auth
    ) as response:
        assert response.status == 413
    assert main_upstream.received == []

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"y" * 200

    async with http.post(f"{routed.url}/upload", data=chunks(), headers=auth) as r:
        assert r.status == 413
    async with http.post(f"{routed.url}/upload", data=b"z" * 999, headers=auth) as r:
        assert r.status == 200


async def test_trusted_proxy_chains_are_extended(
    start_gateway: GatewayFactory, main_upstream: Recorder, http: aiohttp.ClientSession
) -> None:
    """Behind a trusted proxy the forwarding headers grow instead of resetting."""
    gateway = start_gateway(
        "memory://", main_upstream.url, listen_trusted_proxies="127.0.0.0/8"
    )
    pair = await new_session(http, gateway.url, "chained")
    headers = bearer(pair["access_token"]) | {
        "X-Forwarded-For": "203.0.113.5",
        "X-Forwarded-Proto": "https",
        "Forwarded": "for=203.0.113.5;proto=https",
    }
    async with http.get(f"{gateway.url}/chain", headers=headers):
        pass
    received = main_upstream.received[-1]
    assert received.header_values("X-Forwarded-For") == ["203.0.113.5, 127.0.0.1"]
    assert received.header_values("X-Forwarded-Proto") == ["https"]
    forwarded = received.header_values("Forwarded")[0]
    assert forwarded.startswith("for=203.0.113.5;proto=https, for=127.0.0.1;")
