"""The gateway in front of httpbin, a real HTTP service nobody here wrote,
served by gunicorn on loopback."""

from __future__ import annotations

import gzip
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.client import bearer, new_session
from tests.conftest import Gateway, GatewayFactory
from tests.servers import HOST, ServerProcess, free_port


@pytest.fixture(scope="module")
def httpbin_url() -> Iterator[str]:
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent))
    assert gunicorn is not None, "gunicorn comes with the dev extras"
    port = free_port()
    server = ServerProcess(
        "httpbin",
        [gunicorn, "-b", f"{HOST}:{port}", "-w", "2", "httpbin:app"],
        port,
    )
    server.start()
    yield f"http://{HOST}:{port}"
    server.stop()


@pytest.fixture
async def front(
    start_gateway: GatewayFactory, httpbin_url: str, http: aiohttp.ClientSession
) -> tuple[Gateway, dict[str, str]]:
    gateway = start_gateway("memory://", httpbin_url, upstream_timeout="2")
    pair = await new_session(http, gateway.url, "binner")
    return gateway, bearer(pair["access_token"])


async def test_httpbin_sees_the_request_as_sent_plus_identity(
    front: tuple[Gateway, dict[str, str]], http: aiohttp.ClientSession
) -> None:
    """Method, query, body and headers arrive; X-User-Id is the token's subject
    and the client's Authorization and spoofed identity do not."""
    gateway, auth = front
    headers = auth | {"X-User-Id": "admin", "X-Custom": "kept"}
    async with http.put(
        f"{gateway.url}/anything/x?a=1&a=2&b=%2F",
        data=b'{"k": "v"}',
        headers=headers | {"Content-Type": "application/json"},
    ) as response:
        assert response.status == 200
        echoed = await response.json()
    assert echoed["method"] == "PUT"
    assert echoed["args"] == {"a": ["1", "2"], "b": "/"}
    assert echoed["json"] == {"k": "v"}
    sent = echoed["headers"]
    assert sent["X-Custom"] == "kept"
    assert "Authorization" not in sent
    assert sent["X-User-Id"] != "admin"
    assert len(sent["X-User-Id"]) == 36


async def test_httpbin_responses_come_back_unchanged(
    front: tuple[Gateway, dict[str, str]], http: aiohttp.ClientSession
) -> None:
    """Status codes, repeated headers, gzip bodies, redirects and sizes."""
    gateway, auth = front
    async with http.get(f"{gateway.url}/status/418", headers=auth) as response:
        assert response.status == 418
    async with http.get(
        f"{gateway.url}/response-headers?X-Twice=1&X-Twice=2", headers=auth
    ) as response:
        assert response.headers.getall("X-Twice") == ["1", "2"]
    async with (
        aiohttp.ClientSession(auto_decompress=False) as raw,
        raw.get(f"{gateway.url}/gzip", headers=auth) as response,
    ):
        assert response.headers["Content-Encoding"] == "gzip"
        assert b'"gzipped": true' in gzip.decompress(await response.read())
    async with http.get(
        f"{gateway.url}/redirect-to?url=/get", headers=auth, allow_redirects=False
    ) as response:
        assert response.status == 302
        assert response.headers["Location"] == "/get"
    async with http.get(f"{gateway.url}/bytes/100000", headers=auth) as response:
        assert len(await response.read()) == 100000
    async with http.get(f"{gateway.url}/status/204", headers=auth) as response:
        assert response.status == 204
        assert await response.read() == b""
    async with http.get(
        f"{gateway.url}/cache", headers=auth | {"If-None-Match": "x"}
    ) as response:
        assert response.status == 304
        assert await response.read() == b""
    async with http.head(f"{gateway.url}/get", headers=auth) as response:
        assert response.status == 200
        assert await response.read() == b""


async def test_slow_httpbin_is_504(
    front: tuple[Gateway, dict[str, str]], http: aiohttp.ClientSession
) -> None:
    """/delay/4 behind a 2 s upstream timeout is a 504."""
    gateway, auth = front
    async with http.get(f"{gateway.url}/delay/4", headers=auth) as response:
        assert response.status == 504
