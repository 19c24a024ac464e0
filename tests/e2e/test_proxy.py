"""What the upstream receives and what the client gets back through the proxy."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.client import bearer, new_session
from tests.conftest import Gateway, GatewayFactory
from tests.rawhttp import raw_request
from tests.recorder import GZIPPED, Recorder
from tests.servers import HOST, free_port


@pytest.fixture
def proxy(start_gateway: GatewayFactory, recorder: Recorder) -> Gateway:
    return start_gateway("memory://", recorder.url, upstream_timeout="2")


@pytest.fixture
async def session(proxy: Gateway, http: aiohttp.ClientSession) -> dict[str, str]:
    """A logged-in user: its id and access token."""
    pair = await new_session(http, proxy.url, "proxied")
    async with http.get(
        f"{proxy.url}/whoami", headers=bearer(pair["access_token"])
    ) as response:
        assert response.status == 200
    return pair


def user_id_of(recorder: Recorder) -> str:
    values = recorder.received[-1].header_values("X-User-Id")
    assert len(values) == 1
    return values[0]


async def test_client_identity_headers_never_reach_the_upstream(
    proxy: Gateway, recorder: Recorder, session: dict[str, str]
) -> None:
    """Every spelling and copy of X-User-Id is replaced by the token's subject."""
    expected = user_id_of(recorder)
    spoofed = [
        ("X-User-Id", "admin"),
        ("x-user-id", "admin2"),
        ("X_User_Id", "admin3"),
        ("X-USER-ID", "admin4"),
        ("x_user-id", "admin5"),
    ]
    headers = [("Authorization", f"Bearer {session['access_token']}"), *spoofed]
    response = await raw_request(proxy.url, "GET", "/resource", headers)

    assert response.status == 200
    arrived = recorder.received[-1].headers
    identity = [
        (name, value)
        for name, value in arrived
        if name.lower().replace("_", "-") == "x-user-id"
    ]
    assert identity == [("X-User-Id", expected)]


async def test_hop_by_hop_and_connection_listed_headers_are_dropped(
    proxy: Gateway, recorder: Recorder, session: dict[str, str]
) -> None:
    """RFC 9110 7.6.1 fields stop at the gateway; end-to-end ones pass."""
    headers = [
        ("Authorization", f"Bearer {session['access_token']}"),
        ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"),
        ("Proxy-Authorization", "Basic c2VjcmV0"),
        ("X-Hop", "private"),
        ("Connection", "X-Hop"),
        ("X-End-To-End", "kept"),
    ]
    response = await raw_request(proxy.url, "GET", "/headers", headers)

    assert response.status == 200
    got = {name.lower() for name, _ in recorder.received[-1].headers}
    assert got.isdisjoint(
        {"keep-alive", "te", "proxy-authorization", "x-hop", "authorization"}
    )
    assert recorder.received[-1].header_values("X-End-To-End") == ["kept"]


async def test_forwarding_headers_come_from_the_real_peer(
    proxy: Gateway, recorder: Recorder, session: dict[str, str]
) -> None:
    """X-Forwarded-* are the gateway's view, whatever the client claimed."""
    headers = [
        ("Authorization", f"Bearer {session['access_token']}"),
        ("X-Forwarded-For", "203.0.113.9"),
        ("X-Forwarded-Host", "evil.example"),
        ("Forwarded", "for=203.0.113.9"),
    ]
    await raw_request(proxy.url, "GET", "/fwd", headers)

    received = recorder.received[-1]
    assert received.header_values("X-Forwarded-For") == [HOST]
    assert received.header_values("X-Forwarded-Proto") == ["http"]
    assert received.header_values("X-Forwarded-Host") == [proxy.url.split("//")[1]]
    host = proxy.url.split("//")[1]
    assert received.header_values("Forwarded") == [
        f'for={HOST};host="{host}";proto=http'
    ]


async def test_request_id_is_kept_when_well_formed_and_made_otherwise(
    proxy: Gateway, recorder: Recorder, session: dict[str, str]
) -> None:
    """The same X-Request-Id reaches the upstream and returns to the client."""
    auth = ("Authorization", f"Bearer {session['access_token']}")
    kept = await raw_request(proxy.url, "GET", "/r", [auth, ("X-Request-Id", "abc-1")])
    assert recorder.received[-1].header_values("X-Request-Id") == ["abc-1"]
    assert kept.header("X-Request-Id") == "abc-1"

    made = await raw_request(proxy.url, "GET", "/r", [auth, ("X-Request-Id", "a b")])
    generated = recorder.received[-1].header_values("X-Request-Id")
    assert len(generated) == 1 and generated[0] != "a b"
    assert made.header("X-Request-Id") == generated[0]


async def test_method_raw_path_and_query_arrive_unchanged(
    proxy: Gateway, recorder: Recorder, session: dict[str, str]
) -> None:
    """Percent-encoding, ';' and '//' in the path and the raw query are kept."""
    target = "/a%2Fb/;p=1//c%20d?x=1&x=2&y=%2F&z"
    auth = [("Authorization", f"Bearer {session['access_token']}")]
    response = await raw_request(proxy.url, "PATCH", target, auth, b"{}")

    assert response.status == 200
    assert recorder.received[-1].method == "PATCH"
    assert recorder.received[-1].raw_path == target


async def test_request_bodies_arrive_byte_for_byte(
    proxy: Gateway,
    recorder: Recorder,
    session: dict[str, str],
    http: aiohttp.ClientSession,
) -> None:
    """A fixed-length and a chunked upload both reach the upstream intact."""
    payload = os.urandom(3 * 1024 * 1024 + 17)
    url = f"{proxy.url}/digest"
    auth = bearer(session["access_token"])
    async with http.post(url, data=payload, headers=auth) as response:
        assert await response.json() == {
            "sha256": hashlib.sha256(payload).hexdigest(),
            "length": len(payload),
        }
    assert recorder.received[-1].header_values("Content-Length") == [str(len(payload))]

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), 100_000):
            yield payload[start : start + 100_000]

    async with http.post(url, data=chunks(), headers=auth) as response:
        assert (await response.json())["sha256"] == hashlib.sha256(payload).hexdigest()


async def test_large_download_streams_through(
    proxy: Gateway, session: dict[str, str], http: aiohttp.ClientSession
) -> None:
    """A 32 MiB streamed response arrives complete and in order."""
    digest = hashlib.sha256()
    size = 0
    async with http.get(
        f"{proxy.url}/big/32", headers=bearer(session["access_token"])
    ) as response:
        assert response.status == 200
        async for chunk in response.content.iter_chunked(65536):
            digest.update(chunk)
            size += len(chunk)
    block = bytes(range(256)) * 4096
    assert size == 32 * len(block)
    assert digest.hexdigest() == hashlib.sha256(block * 32).hexdigest()


async def test_response_details_pass_through(
    proxy: Gateway, session: dict[str, str], http: aiohttp.ClientSession
) -> None:
    """Repeated Set-Cookie, gzip bodies, redirects, HEAD and 204 are untouched."""
    auth = bearer(session["access_token"])
    async with http.get(f"{proxy.url}/cookies", headers=auth) as response:
        assert response.headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]

    async with (
        aiohttp.ClientSession(auto_decompress=False) as raw,
        raw.get(f"{proxy.url}/gzip", headers=auth) as response,
    ):
        assert response.headers["Content-Encoding"] == "gzip"
        assert await response.read() == GZIPPED

    async with http.get(
        f"{proxy.url}/redirect", headers=auth, allow_redirects=False
    ) as response:
        assert response.status == 302
        assert response.headers["Location"] == "/elsewhere"

    async with http.head(f"{proxy.url}/cookies", headers=auth) as response:
        assert response.status == 200
        assert await response.read() == b""

    async with http.delete(f"{proxy.url}/empty", headers=auth) as response:
        assert response.status == 204
        assert await response.read() == b""


async def test_requests_without_a_valid_token_never_reach_the_upstream(
    proxy: Gateway, recorder: Recorder, http: aiohttp.ClientSession
) -> None:
    """No token, or the wrong scheme: 401 with a Bearer challenge."""
    for headers in ({}, {"Authorization": "Basic am9lOnB3"}, bearer("")):
        async with http.get(f"{proxy.url}/resource", headers=headers) as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert response.content_type == "application/problem+json"
    assert recorder.received == []


async def test_gateway_paths_are_never_proxied(
    proxy: Gateway, recorder: Recorder, session: dict[str, str]
) -> None:
    """Unknown /user/ paths are 404 and wrong methods 405, even with a token."""
    auth = [("Authorization", f"Bearer {session['access_token']}")]
    before = len(recorder.received)
    unknown = await raw_request(proxy.url, "GET", "/user/admin", auth)
    wrong_method = await raw_request(proxy.url, "GET", "/user/login", auth)

    assert unknown.status == 404
    assert wrong_method.status == 405
    assert wrong_method.header("Allow") == "POST"
    assert len(recorder.received) == before


async def test_unreachable_upstream_is_502(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    """Nothing listening upstream: 502 problem, no internal detail."""
    dead = f"http://{HOST}:{free_port()}"
    gateway = start_gateway("memory://", dead)
    pair = await new_session(http, gateway.url, "stranded")
    async with http.get(
        f"{gateway.url}/resource", headers=bearer(pair["access_token"])
    ) as response:
        assert response.status == 502
        body = await response.json()
    assert body["status"] == 502
    assert "refused" not in str(body).lower()


async def test_slow_upstream_is_504(
    proxy: Gateway, session: dict[str, str], http: aiohttp.ClientSession
) -> None:
    """An upstream slower than upstream.timeout gets a 504."""
    async with http.get(
        f"{proxy.url}/slow", headers=bearer(session["access_token"])
    ) as response:
        assert response.status == 504
        assert (await response.json())["title"] == "Gateway Timeout"
