"""GET /openapi.json: served by the gateway itself, as valid OpenAPI 3.1."""

from __future__ import annotations

from importlib import metadata

import aiohttp
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from gateway.openapi import DISTRIBUTION
from tests.conftest import GatewayFactory
from tests.recorder import Recorder


async def test_description_is_served_as_valid_openapi(
    start_gateway: GatewayFactory, recorder: Recorder, http: aiohttp.ClientSession
) -> None:
    """No token needed, JSON, valid OpenAPI 3.1, the package's version, and
    the upstream never hears of it."""
    gateway = start_gateway("memory://", recorder.url)
    async with http.get(f"{gateway.url}/openapi.json") as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        description = await response.json()

    validate(description, cls=OpenAPIV31SpecValidator)
    assert description["info"]["version"] == metadata.version(DISTRIBUTION)
    assert "/user/login" in description["paths"]
    assert recorder.received == []


async def test_description_path_is_never_proxied(
    start_gateway: GatewayFactory, recorder: Recorder, http: aiohttp.ClientSession
) -> None:
    """Another method on /openapi.json is the gateway's 405, not the upstream's."""
    gateway = start_gateway("memory://", recorder.url)
    async with http.post(f"{gateway.url}/openapi.json", data=b"{}") as response:
        assert response.status == 405
        assert response.headers["Allow"] == "GET,HEAD"
        assert response.content_type == "application/problem+json"
    assert recorder.received == []
