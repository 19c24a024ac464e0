"""Forwarding every path the gateway does not own to the upstream.

A request needs a valid access token (checked by computation only, never with
a store round trip) and then goes upstream with its method, raw path, query
and streamed body, minus hop-by-hop headers and any identity header the client
tried to set, plus ``X-User-Id`` and the forwarding headers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from gateway.auth.access import authenticate
from gateway.config import UpstreamConfig
from gateway.errors import BadGateway, GatewayTimeout, NotFound
from gateway.forwarding import forwarded_for_chain
from gateway.keys import CONFIG, OWN_ROUTES, TRUSTED_PROXIES, UPSTREAM_CLIENT
from gateway.logs import REQUEST_ID_HEADER

log = logging.getLogger("gateway.proxy")

IDENTITY_HEADER = "X-User-Id"
# RFC 9110 section 7.6.1: connection-specific fields a proxy must not forward.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Set by the gateway itself, so a client's copy is never passed on.  Host is
# rebuilt for the upstream, Authorization stays here, Expect is answered here.
_REPLACED_ON_REQUEST = frozenset(
    {
        "host",
        "authorization",
        "expect",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-request-id",
    }
)
# Compared with case, '-' and '_' ignored: X_User_Id is X-User-Id to many servers.
_IDENTITY_SPELLINGS = frozenset({"xuserid"})
_CHUNK = 64 * 1024


async def proxy_handler(request: web.Request) -> web.StreamResponse:
    _refuse_own_paths(request)
    claims = authenticate(request)

    config = request.app[CONFIG].upstream
    headers = upstream_request_headers(request, claims.user_id)
    body = request.content if request.body_exists else None
    upstream = await _send(request, config, headers, body)
    try:
        return await _relay(request, upstream)
    finally:
        upstream.release()


def upstream_request_headers(request: web.Request, user_id: str) -> CIMultiDict[str]:
    """The client's headers as the upstream should see them."""
    headers: CIMultiDict[str] = CIMultiDict()
    dropped = _connection_listed(request.headers.getall("Connection", ()))
    for raw_name, raw_value in request.raw_headers:
        name = raw_name.decode("latin-1")
        lowered = name.lower()
        if lowered in HOP_BY_HOP or lowered in dropped:
            continue
        if lowered in _REPLACED_ON_REQUEST or is_identity_header(lowered):
            continue
        headers.add(name, raw_value.decode("latin-1"))

    headers[IDENTITY_HEADER] = user_id
    headers.update(forwarding_headers(request))
    headers[REQUEST_ID_HEADER] = request["request_id"]
    return headers


def forwarding_headers(request: web.Request) -> dict[str, str]:
    """X-Forwarded-*: extended from a trusted proxy, rebuilt from anyone else."""
    peer = request.remote or ""
    if request.app[TRUSTED_PROXIES].peer_is_trusted(request):
        chain = forwarded_for_chain(request)
        return {
            "X-Forwarded-For": ", ".join([*chain, peer]),
            "X-Forwarded-Proto": request.headers.get(
                "X-Forwarded-Proto", request.scheme
            ),
            "X-Forwarded-Host": request.headers.get("X-Forwarded-Host", request.host),
        }
    return {
        "X-Forwarded-For": peer,
        "X-Forwarded-Proto": request.scheme,
        "X-Forwarded-Host": request.host,
    }


def is_identity_header(name: str) -> bool:
    folded = name.lower().replace("-", "").replace("_", "")
    return folded in _IDENTITY_SPELLINGS


def upstream_response_headers(upstream: aiohttp.ClientResponse) -> CIMultiDict[str]:
    """The upstream's headers for the client, repeated ones kept apart."""
    headers: CIMultiDict[str] = CIMultiDict()
    dropped = _connection_listed(upstream.headers.getall("Connection", ()))
    for raw_name, raw_value in upstream.raw_headers:
        name = raw_name.decode("latin-1")
        lowered = name.lower()
        if lowered in HOP_BY_HOP or lowered in dropped:
            continue
        headers.add(name, raw_value.decode("latin-1"))
    return headers


def _refuse_own_paths(request: web.Request) -> None:
    """``/user/*`` belongs to the gateway: never proxied, whatever the method."""
    path = request.path
    if path != "/user" and not path.startswith("/user/"):
        return
    methods = request.app[OWN_ROUTES].get(path)
    if methods:
        raise web.HTTPMethodNotAllowed(request.method, sorted(methods))
    raise NotFound("no such endpoint")


async def _send(
    request: web.Request,
    config: UpstreamConfig,
    headers: CIMultiDict[str],
    body: aiohttp.StreamReader | None,
) -> aiohttp.ClientResponse:
    base = config.url.rstrip("/")
    url = URL(base + request.raw_path, encoded=True)
    client = request.app[UPSTREAM_CLIENT]
    try:
        async with asyncio.timeout(config.timeout):
            return await client.request(
                request.method,
                url,
                headers=headers,
                data=body,
                allow_redirects=False,
            )
    except TimeoutError:
        log.warning("upstream timed out", extra={"upstream": base})
        raise GatewayTimeout("the upstream did not answer in time") from None
    except aiohttp.ClientError as exc:
        log.warning(
            "upstream unreachable",
            extra={"upstream": base, "error": type(exc).__name__},
        )
        raise BadGateway("the upstream could not be reached") from None


async def _relay(
    request: web.Request, upstream: aiohttp.ClientResponse
) -> web.StreamResponse:
    response = web.StreamResponse(
        status=upstream.status,
        reason=upstream.reason,
        headers=upstream_response_headers(upstream),
    )
    await response.prepare(request)
    try:
        async for chunk in upstream.content.iter_chunked(_CHUNK):
            await response.write(chunk)
    except (aiohttp.ClientError, TimeoutError) as exc:
        # Headers are gone already: all we can do is cut the connection so
        # the client sees a truncated body rather than a complete-looking one.
        log.warning("upstream body interrupted", extra={"error": type(exc).__name__})
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response


def _connection_listed(values: Iterable[str]) -> frozenset[str]:
    """Field names a Connection header marks as hop-by-hop (RFC 9110 7.6.1)."""
    return frozenset(
        token.strip().lower()
        for value in values
        for token in value.split(",")
        if token.strip()
    )
