"""Reading the small JSON bodies of the ``/user/*`` endpoints, strictly."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gateway.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType


async def read_json_object(request: web.Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object, or a 4xx Problem explaining why not."""
    if not _is_json(request.content_type):
        raise UnsupportedMediaType("the body must be application/json")
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"the body must be at most {limit} bytes")

    raw = await _read_limited(request, limit)
    try:
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=_reject_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(value, dict):
        raise BadRequest("the body must be a JSON object")
    return value


def require_string(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise BadRequest(f"'{name}' is required and must be a string")
    try:
        # JSON escapes can spell lone surrogates, which no text can hold.
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"'{name}' is not valid Unicode") from None
    return value


def _is_json(content_type: str) -> bool:
    main = content_type.lower()
    return main == "application/json" or (
        main.startswith("application/") and main.endswith("+json")
    )


async def _read_limited(request: web.Request, limit: int) -> bytes:
    # Content-Length can be absent (chunked) or wrong: count what arrives.
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body must be at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result
