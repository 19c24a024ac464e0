"""The shipped OpenAPI description: a valid 3.1 document that names exactly
the endpoints the app answers itself."""

from __future__ import annotations

from importlib import metadata

from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from gateway.app import create_app
from gateway.config import load_config
from gateway.keys import OWN_ROUTES
from gateway.openapi import DISTRIBUTION, load_description
from tests.servers import TEST_SECRET

# aiohttp adds HEAD beside every GET; the description leaves it implied.
IMPLIED_METHODS = {"HEAD"}


def test_description_is_valid_openapi_3_1() -> None:
    """The YAML loads, validates as OpenAPI 3.1 and carries the package version."""
    description = load_description()
    validate(description, cls=OpenAPIV31SpecValidator)
    assert description["openapi"].startswith("3.1.")
    assert description["info"]["version"] == metadata.version(DISTRIBUTION)


def test_every_own_route_is_described_and_nothing_else() -> None:
    """Paths and methods in the description are those the app routes itself,
    so neither can gain an endpoint the other does not know."""
    config = load_config(None, {"GATEWAY_JWT_SECRET": TEST_SECRET})
    routed = {
        (path, method.lower())
        for path, methods in create_app(config)[OWN_ROUTES].items()
        for method in methods - IMPLIED_METHODS
    }
    described = {
        (path, method)
        for path, item in load_description()["paths"].items()
        for method in item
    }
    assert routed == described
