"""Errors that know their HTTP answer, and the one middleware that writes it.

Handlers raise :class:`Problem` subclasses; everything becomes an RFC 9457
``application/problem+json`` body here, and nothing internal (tracebacks, SQL
or store messages) ever reaches a client.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from gateway.sessions import StoreUnavailable
from gateway.users import DatabaseUnavailable

log = logging.getLogger("gateway.errors")

PROBLEM_TYPE = "application/problem+json"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Problem(Exception):
    """An error answer: status, a short title and an optional detail."""

    status = 500
    title = "Internal Server Error"

    def __init__(
        self, detail: str | None = None, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.headers = dict(headers or {})


class BadRequest(Problem):
    status = 400
    title = "Bad Request"


class Unauthorized(Problem):
    status = 401
    title = "Unauthorized"

    def __init__(self, detail: str | None = None, *, error: str = "") -> None:
        # RFC 6750 section 3: a Bearer challenge on every 401.
        challenge = 'Bearer realm="gateway"'
        if error:
            challenge += f', error="{error}"'
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class NotFound(Problem):
    status = 404
    title = "Not Found"


class Conflict(Problem):
    status = 409
    title = "Conflict"


class PayloadTooLarge(Problem):
    status = 413
    title = "Payload Too Large"


class UnsupportedMediaType(Problem):
    status = 415
    title = "Unsupported Media Type"


class BadGateway(Problem):
    status = 502
    title = "Bad Gateway"


class ServiceUnavailable(Problem):
    status = 503
    title = "Service Unavailable"

    def __init__(self, detail: str | None = None, *, retry_after: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class GatewayTimeout(Problem):
    status = 504
    title = "Gateway Timeout"


def problem_response(
    status: int,
    title: str,
    detail: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    body: dict[str, object] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type=PROBLEM_TYPE,
        headers=headers,
    )


@web.middleware
async def problem_middleware(
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    """Answer every failure as problem+json, picking the log level by cause."""
    try:
        return await handler(request)
    except Problem as problem:
        return problem_response(
            problem.status, problem.title, problem.detail, problem.headers
        )
    except StoreUnavailable:
        return problem_response(
            503, "Service Unavailable", "session store unavailable", _RETRY
        )
    except DatabaseUnavailable:
        return problem_response(
            503, "Service Unavailable", "user database unavailable", _RETRY
        )
    except web.HTTPException as exc:
        # aiohttp's own answers (404 from the router, 405, 413 from read()).
        headers = {
            name: value
            for name, value in exc.headers.items()
            if name.lower() in {"allow", "retry-after"}
        }
        return problem_response(exc.status, exc.reason, None, headers)
    except Exception:
        log.exception(
            "unexpected error", extra={"method": request.method, "path": request.path}
        )
        return problem_response(500, "Internal Server Error")


_RETRY = {"Retry-After": "1"}
