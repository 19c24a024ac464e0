"""Structured logging: the formatter, request context and the access log.

Every line carries the request id (and user id, once known) of the request it
belongs to, bound once in a context variable.  Nothing here ever logs a
header value, a body, a token or a query string.
"""

from __future__ import annotations

import atexit
import contextvars
import json
import logging
import logging.handlers
import queue
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway import metrics

access_log = logging.getLogger("gateway.access")

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Attributes every LogRecord has; anything else came in through ``extra``.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
) | {"message", "asctime", "taskName"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(_fields(record))
        traceback = _traceback(self, record)
        if traceback:
            line["exc"] = traceback
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """``key=value`` pairs after the message, for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        pairs = " ".join(f"{key}={_text_value(value)}" for key, value in fields.items())
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        text = f"{stamp} {record.levelname.lower():7} {record.name}: "
        text += f"{record.getMessage()} {pairs}".rstrip()
        traceback = _traceback(self, record)
        if traceback:
            text += "\n" + traceback
        return text


class _Enqueue(logging.handlers.QueueHandler):
    """Hands records to the writer thread, so that writing a log line never
    blocks the event loop.  What belongs to the calling task (its request
    id, the traceback) is pinned on the record before it leaves."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        if "request_id" not in vars(record):
            record.request_id = request_id_var.get()
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        record.msg = record.getMessage()
        record.args = None
        return record


def _fields(record: logging.LogRecord) -> dict[str, object]:
    """The request id (when there is one) and everything passed in ``extra``."""
    fields = {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}
    request_id = fields.pop("request_id", None) or request_id_var.get()
    if request_id is not None:
        return {"request_id": request_id, **fields}
    return fields


def _traceback(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    if record.exc_info:
        return formatter.formatException(record.exc_info)
    return record.exc_text or ""


def _text_value(value: object) -> str:
    """A value that cannot break the line or forge a field: anything with a
    space, '=', a quote or a non-printable character is JSON-quoted."""
    text = str(value)
    if text and all(ch.isprintable() and ch not in ' ="' for ch in text):
        return text
    return json.dumps(text)


class _ProtocolErrorsWithoutDetail(logging.Filter):
    """aiohttp logs a request its parser refused with the offending line and
    a traceback, and that line can hold a whole Authorization or Cookie
    header.  Keep the fact, drop the text."""

    def filter(self, record: logging.LogRecord) -> bool:
        kind = record.exc_info[1].__class__.__name__ if record.exc_info else "error"
        record.msg = "request refused by the HTTP parser"
        record.args = None
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.__dict__["error"] = kind
        return True


def configure_logging(level: str, fmt: str) -> None:
    """Log to stderr from a thread of its own, in the configured format."""
    writer = logging.StreamHandler(sys.stderr)
    writer.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(records, writer)
    listener.start()
    atexit.register(listener.stop)
    root = logging.getLogger()
    root.handlers[:] = [_Enqueue(records)]
    root.setLevel(level.upper())
    # aiohttp's own access log would repeat ours without the context, and
    # aiosqlite's debug lines carry SQL parameters (password hashes).
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    server_log = logging.getLogger("aiohttp.server")
    server_log.filters[:] = [_ProtocolErrorsWithoutDetail()]
    logging.getLogger("aiosqlite").setLevel(logging.WARNING)


def incoming_request_id(value: str | None) -> str:
    """Keep a well-formed client request id, otherwise make a new one."""
    if value and _REQUEST_ID_PATTERN.fullmatch(value):
        return value
    return uuid.uuid4().hex


def access_log_middleware() -> Middleware:
    """Bind the request id and write one summary line per request."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = incoming_request_id(request.headers.get(REQUEST_ID_HEADER))
        request["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status: int | str = "cancelled"
        try:
            response = await handler(request)
            status = response.status
            return response
        finally:
            elapsed = time.perf_counter() - started
            route = route_name(request)
            metrics.REQUESTS.labels(route, str(status)).inc()
            metrics.REQUEST_SECONDS.labels(route).observe(elapsed)
            access_log.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "user_id": request.get("user_id"),
                    "remote": request.remote,
                },
            )
            request_id_var.reset(token)

    return middleware


def route_name(request: web.Request) -> str:
    """A bounded label for the request's route: the endpoint's pattern, or
    "proxy" for everything forwarded."""
    resource = request.match_info.route.resource
    if resource is None:
        return "unmatched"
    canonical = resource.canonical
    return "proxy" if canonical.startswith("/{tail") else canonical


async def add_request_id_header(
    request: web.Request, response: web.StreamResponse
) -> None:
    """``on_response_prepare`` hook: echo the request id to the client."""
    request_id = request.get("request_id")
    if request_id is not None:
        response.headers[REQUEST_ID_HEADER] = request_id
