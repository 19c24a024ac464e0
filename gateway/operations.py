"""The admin listener: liveness, readiness and metrics for operators.

It runs on its own address (``admin.host``/``admin.port``, loopback by
default) so that none of its paths can collide with the upstream's or be
reached by clients of the gateway.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from gateway.keys import CONFIG, STORE, USERS
from gateway.metrics import exposition
from gateway.sessions import StoreUnavailable
from gateway.users import DatabaseUnavailable

GATEWAY = web.AppKey("gateway", web.Application)


def create_admin_app(gateway: web.Application) -> web.Application:
    admin = web.Application()
    admin[GATEWAY] = gateway
    admin.router.add_get("/healthz", healthz)
    admin.router.add_get("/readyz", readyz)
    admin.router.add_get("/metrics", metrics)
    return admin


async def healthz(request: web.Request) -> web.Response:
    """The process is alive and its event loop answers."""
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    """Both the store and the database answer; otherwise 503 naming them."""
    gateway = request.app[GATEWAY]
    deadline = gateway[CONFIG].store.timeout
    failing = []
    for name, check in (
        ("store", gateway[STORE].ping),
        ("database", gateway[USERS].ping),
    ):
        try:
            await asyncio.wait_for(check(), timeout=deadline)
        except (StoreUnavailable, DatabaseUnavailable, TimeoutError):
            failing.append(name)
    # Without the feed this gateway would honour tokens of ended sessions.
    if "store" not in failing and not gateway[STORE].feed_live:
        failing.append("revocation feed")
    if failing:
        return web.json_response(
            {"status": "not ready", "failing": failing},
            status=503,
            headers={"Retry-After": "1"},
        )
    return web.json_response({"status": "ready"})


# The Prometheus text exposition format, version 0.0.4.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def metrics(request: web.Request) -> web.Response:
    body = exposition()
    return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE})
