"""The OpenAPI description of the gateway's own endpoints, served as JSON.

The description is written by hand in ``openapi.yaml`` beside this module and
shipped in the package.  It is read and turned into JSON once, when the app
is built, with the installed package's version in ``info.version``; keeping
it true is the job of the fuzz test in ``tests/e2e/test_openapi_fuzz.py``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from importlib import metadata, resources
from typing import Any

import yaml
from aiohttp import web

DISTRIBUTION = "session-gateway"
# Shown when the code runs from a tree that was never installed.
UNKNOWN_VERSION = "0+unknown"

Handler = Callable[[web.Request], Awaitable[web.Response]]


def load_description() -> dict[str, Any]:
    """The description as a mapping, versioned like the installed package."""
    text = resources.files("gateway").joinpath("openapi.yaml").read_text("utf-8")
    description: dict[str, Any] = yaml.safe_load(text)
    description["info"]["version"] = package_version()
    return description


def package_version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return UNKNOWN_VERSION


def openapi_handler() -> Handler:
    """A handler answering the description, converted once, up front."""
    body = json.dumps(load_description()).encode("utf-8")

    async def openapi_json(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    return openapi_json
