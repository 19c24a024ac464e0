"""Forwarding every path the gateway does not own to its upstream.

A request on a protected route needs a valid access token (checked by
computation and the local revoked list, never with a store round trip).  It
then goes upstream with its method, raw path, query and streamed body, minus
hop-by-hop headers and any identity header the client tried to set, plus
``X-User-Id`` and the forwarding headers.  WebSocket upgrades are handed to
:mod:`gateway.websocket` after the same checks.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterable

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from gateway import metrics
from gateway.auth.access import authenticate
from gateway.errors import (
    BadGateway,
    BadRequest,
    GatewayTimeout,
    NotFound,
    PayloadTooLarge,
    Problem,
    problem_response,
)
from gateway.forwarding import forwarded_for_chain
from gateway.keys import OWN_ROUTES, ROUTER, TOKENS, TRUSTED_PROXIES, UPSTREAM_CLIENT
from gateway.logs import REQUEST_ID_HEADER
from gateway.routing import Route
from gateway.websocket import is_websocket_upgrade, proxy_websocket

log = logging.getLogger("gateway.proxy")

IDENTITY_HEADER = "X-User-Id"
ASSERTION_HEADER = "X-Gateway-Assertion"
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
# Set by the gateway itself, or claims about the client that only the gateway
# may make, so a client's copy is never passed on.  Host is rebuilt for the
# upstream, Expect is answered here; the URL overrides are path rewrites some
# frameworks obey, which would let a client pick a path past the routing.
_REPLACED_ON_REQUEST = frozenset(
    {
        "host",
        "expect",
        "forwarded",
        "x-request-id",
        "x-real-ip",
        "x-client-ip",
        "true-client-ip",
        "x-original-url",
        "x-rewrite-url",
        "x-gateway-assertion",
    }
)
_DOT_SEGMENT = re.compile(r"(?:^|/)(?:\.|%2e){1,2}(?:/|$)", re.IGNORECASE)
# Compared with case, '-' and '_' ignored: X_User_Id is X-User-Id to many servers.
_IDENTITY_SPELLINGS = frozenset({"xuserid"})
_CHUNK = 64 * 1024


async def proxy_handler(request: web.Request) -> web.StreamResponse:
    route, user_id = _admit(request)
    headers = upstream_request_headers(request, user_id, route)
    if is_websocket_upgrade(request):
        return await proxy_websocket(request, route, headers)

    body = _limited(request, route.max_body) if request.body_exists else None
    upstream = await _send(request, route, headers, body)
    try:
        return await _relay(request, upstream)
    finally:
        upstream.release()


async def admit_continue(request: web.Request) -> web.StreamResponse | None:
    """Answer ``Expect: 100-continue`` only for a request that will be let
    through, so a client never uploads a body just to be refused."""
    try:
        _admit(request)
    except Problem as problem:
        return problem_response(
            problem.status, problem.title, problem.detail, problem.headers
        )
    except web.HTTPException as exc:
        return problem_response(exc.status, exc.reason, None, exc.headers)
    await expect_continue(request)
    return None


async def expect_continue(request: web.Request) -> None:
    """Send ``100 Continue`` when asked; any other expectation is ignored,
    which RFC 9110 section 10.1.1 allows, rather than answered 417."""
    if request.version != aiohttp.HttpVersion11:
        return
    if request.headers.get("Expect", "").strip().lower() != "100-continue":
        return
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0  # the 100 is not part of the response


def _admit(request: web.Request) -> tuple[Route, str | None]:
    """The route and user of a request the proxy may forward, or a Problem."""
    _refuse_own_paths(request)
    if _DOT_SEGMENT.search(request.rel_url.raw_path):
        raise BadRequest("the path must not contain . or .. segments")
    route = request.app[ROUTER].match(request)
    user_id = None if route.public else authenticate(request).user_id
    declared = request.content_length
    if route.max_body and declared is not None and declared > route.max_body:
        raise PayloadTooLarge(f"the body must be at most {route.max_body} bytes")
    return route, user_id


def upstream_request_headers(
    request: web.Request, user_id: str | None, route: Route
) -> CIMultiDict[str]:
    """The client's headers as the upstream should see them."""
    headers: CIMultiDict[str] = CIMultiDict()
    dropped = _connection_listed(request.headers.getall("Connection", ()))
    for raw_name, raw_value in request.raw_headers:
        name = raw_name.decode("latin-1")
        # Many servers read X_Forwarded_For as X-Forwarded-For: compare folded.
        folded = name.lower().replace("_", "-")
        if folded in HOP_BY_HOP or folded in dropped or _replaced(folded):
            continue
        if is_identity_header(folded):
            continue
        if folded == "authorization" and not route.forward_authorization:
            continue
        headers.add(name, raw_value.decode("latin-1"))

    if user_id is not None:
        headers[IDENTITY_HEADER] = user_id
    if route.assertion_audience is not None:
        headers[ASSERTION_HEADER] = request.app[TOKENS].assertion(
            route.assertion_audience,
            user_id,
            request.method,
            request.rel_url.raw_path,
        )
    headers.update(forwarding_headers(request))
    headers[REQUEST_ID_HEADER] = request["request_id"]
    return headers


def _replaced(folded: str) -> bool:
    return folded in _REPLACED_ON_REQUEST or folded.startswith("x-forwarded-")


def is_identity_header(name: str) -> bool:
    folded = name.lower().replace("-", "").replace("_", "")
    return folded in _IDENTITY_SPELLINGS


def forwarding_headers(request: web.Request) -> dict[str, str]:
    """X-Forwarded-* and Forwarded (RFC 7239): extended when the peer is a
    trusted proxy, rebuilt from the connection for anyone else."""
    peer = request.remote or ""
    proto, host = request.scheme, request.host
    ours = f"for={_forwarded_node(peer)};host={_quoted(host)};proto={proto}"
    if not request.app[TRUSTED_PROXIES].peer_is_trusted(request):
        return {
            "X-Forwarded-For": peer,
            "X-Forwarded-Proto": proto,
            "X-Forwarded-Host": host,
            "X-Real-IP": peer,
            "Forwarded": ours,
        }
    earlier = ", ".join(request.headers.getall("Forwarded", ()))
    return {
        "X-Forwarded-For": ", ".join([*forwarded_for_chain(request), peer]),
        "X-Forwarded-Proto": request.headers.get("X-Forwarded-Proto", proto),
        "X-Forwarded-Host": request.headers.get("X-Forwarded-Host", host),
        "X-Real-IP": request.app[TRUSTED_PROXIES].client_address(request),
        "Forwarded": f"{earlier}, {ours}" if earlier else ours,
    }


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


def upstream_url(route: Route, request: web.Request) -> URL:
    # rel_url, not raw_path: an absolute-form target (RFC 9112 3.2.2) must
    # not glue the client's scheme and host onto the upstream's.
    return URL(route.base_url + request.rel_url.raw_path_qs, encoded=True)


def _refuse_own_paths(request: web.Request) -> None:
    """The gateway's own paths are never proxied, whatever the method."""
    path = request.path
    methods = request.app[OWN_ROUTES].methods_for(path)
    if methods:
        raise web.HTTPMethodNotAllowed(request.method, sorted(methods))
    if path == "/user" or path.startswith("/user/"):
        raise NotFound("no such endpoint")


class _BodyTooLarge(Exception):
    """The streamed request body went past the route's limit."""


async def _limited(request: web.Request, limit: int) -> AsyncIterator[bytes]:
    """The request body as it arrives, cut off past *limit* bytes (0: none)."""
    seen = 0
    async for chunk in request.content.iter_chunked(_CHUNK):
        seen += len(chunk)
        if limit and seen > limit:
            request["body_too_large"] = True
            raise _BodyTooLarge
        yield chunk


async def _send(
    request: web.Request,
    route: Route,
    headers: CIMultiDict[str],
    body: AsyncIterator[bytes] | None,
) -> aiohttp.ClientResponse:
    client = request.app[UPSTREAM_CLIENT]
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=route.connect_timeout, sock_read=route.timeout
    )
    # No overall deadline: a slow client upload is not the upstream's delay.
    # sock_read bounds each wait for the upstream, its first answer included.
    try:
        return await client.request(
            request.method,
            upstream_url(route, request),
            headers=headers,
            data=body,
            allow_redirects=False,
            timeout=timeout,
        )
    except TimeoutError:
        metrics.UPSTREAM_ERRORS.labels("timeout").inc()
        log.warning("upstream timed out", extra={"upstream": route.base_url})
        raise GatewayTimeout("the upstream did not answer in time") from None
    except (aiohttp.ClientError, _BodyTooLarge) as exc:
        if request.get("body_too_large"):
            raise PayloadTooLarge(
                f"the body must be at most {route.max_body} bytes"
            ) from None
        metrics.UPSTREAM_ERRORS.labels("unreachable").inc()
        log.warning(
            "upstream unreachable",
            extra={"upstream": route.base_url, "error": type(exc).__name__},
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
    except ConnectionResetError:
        log.info("client went away during the response")
        return response
    except (aiohttp.ClientError, TimeoutError) as exc:
        # Headers are gone already: all we can do is cut the connection so
        # the client sees a truncated body rather than a complete-looking one.
        metrics.UPSTREAM_ERRORS.labels("interrupted").inc()
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


def _forwarded_node(address: str) -> str:
    # RFC 7239 section 6: IPv6 addresses are bracketed and quoted.
    return f'"[{address}]"' if ":" in address else address or "unknown"


def _quoted(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
