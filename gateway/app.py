"""The application factory: resources, middleware order and routes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from gateway.auth.passwords import PasswordHasher
from gateway.auth.routes import routes as auth_routes
from gateway.auth.session_routes import routes as session_routes
from gateway.auth.signing import KeyRing
from gateway.auth.tokens import ROTATION_PURPOSE, AccessTokens, PendingRotations
from gateway.config import Config, SessionsConfig
from gateway.errors import problem_middleware
from gateway.forwarding import TrustedProxies
from gateway.keys import (
    CONFIG,
    HASHER,
    OWN_ROUTES,
    PENDING_ROTATIONS,
    REVOKED,
    ROTATION_KEY,
    ROUTER,
    STORE,
    TOKENS,
    TRUSTED_PROXIES,
    UPSTREAM_CLIENT,
    USERS,
)
from gateway.logs import access_log_middleware, add_request_id_header
from gateway.openapi import openapi_handler
from gateway.proxy import admit_continue, expect_continue, proxy_handler
from gateway.routing import OwnPaths, Route, Router
from gateway.sessions import RevokedSessions, SessionPolicy, open_store
from gateway.users import open_user_database

log = logging.getLogger("gateway")
MAX_HEADER_FIELD = 128 * 1024
PRUNE_INTERVAL_S = 60


def create_app(config: Config, keys: KeyRing | None = None) -> web.Application:
    """The gateway; *keys* are loaded from the config when not given."""
    keys = keys or KeyRing.load(config.jwt)
    # The access log is outermost so that it sees the final status, including
    # the problem responses written by the error middleware inside it.
    app = web.Application(
        middlewares=[access_log_middleware(), problem_middleware],
        client_max_size=config.limits.json_body,
        # Large enough that an oversized token reaches the token check and
        # gets a 401 problem, rather than a bare 400 from the HTTP parser.
        # Request bodies are passed upstream as sent, compressed or not.
        handler_args={"max_field_size": MAX_HEADER_FIELD, "auto_decompress": False},
    )
    app[CONFIG] = config
    app[TOKENS] = AccessTokens(keys, config.jwt)
    app[ROTATION_KEY] = keys.derive(ROTATION_PURPOSE)
    app[PENDING_ROTATIONS] = PendingRotations()
    app[REVOKED] = RevokedSessions()
    app[TRUSTED_PROXIES] = TrustedProxies.parse(config.listen.trusted_proxies)
    app[ROUTER] = Router(
        [Route.from_config(route) for route in config.routes],
        Route.default(config.upstream),
    )
    app.cleanup_ctx.extend(
        [_users, _store, _revocation_feed, _hasher, _upstream_client]
    )
    app.on_response_prepare.append(add_request_id_header)

    # Added one by one, not with add_routes, to give each the same lenient
    # handling of Expect that the proxied paths get.
    for route in [*auth_routes, *session_routes]:
        if not isinstance(route, web.RouteDef):
            raise TypeError(f"unexpected route definition {route!r}")
        app.router.add_route(
            route.method, route.path, route.handler, expect_handler=expect_continue
        )
    app.router.add_get("/.well-known/jwks.json", jwks, expect_handler=expect_continue)
    app.router.add_get(
        "/openapi.json", openapi_handler(), expect_handler=expect_continue
    )
    app[OWN_ROUTES] = OwnPaths(app.router)
    # [\s\S]: a path may hold an encoded newline, and it is still proxied.
    app.router.add_route(
        "*", r"/{tail:[\s\S]*}", proxy_handler, expect_handler=admit_continue
    )
    return app


async def jwks(request: web.Request) -> web.Response:
    """Public keys for access tokens; none while they are signed with HS256."""
    return web.json_response(
        request.app[TOKENS].keys.jwks(),
        headers={"Cache-Control": "public, max-age=300"},
    )


def session_policy(sessions: SessionsConfig) -> SessionPolicy:
    """The store's policy from the ``sessions`` section."""
    return SessionPolicy.from_seconds(
        idle=sessions.idle_ttl,
        absolute=sessions.absolute_ttl,
        grace=sessions.reuse_grace,
        reissue_in_grace=sessions.reissue_in_grace,
        max_per_user=sessions.max_per_user,
    )


async def _users(app: web.Application) -> AsyncIterator[None]:
    app[USERS] = await open_user_database(app[CONFIG].database)
    yield
    await app[USERS].close()


async def _store(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    policy = session_policy(config.sessions)
    app[STORE] = await open_store(config.store.url, config.store.timeout, policy)
    yield
    await app[STORE].close()


async def _revocation_feed(app: web.Application) -> AsyncIterator[None]:
    """Keep the local revoked list in step with every other gateway."""
    revoked = app[REVOKED]
    ready = asyncio.Event()
    follower = asyncio.create_task(app[STORE].follow_revocations(revoked.add, ready))
    pruner = asyncio.create_task(_prune_forever(revoked))
    # Serve no request before the revocations published while away are in.
    try:
        await asyncio.wait_for(ready.wait(), timeout=app[CONFIG].store.timeout * 2)
    except TimeoutError:
        log.warning("starting before the revocation backlog could be read")
    yield
    for task in (follower, pruner):
        task.cancel()
    await asyncio.gather(follower, pruner, return_exceptions=True)


async def _prune_forever(revoked: RevokedSessions) -> None:
    while True:
        await asyncio.sleep(PRUNE_INTERVAL_S)
        revoked.prune()


async def _hasher(app: web.Application) -> AsyncIterator[None]:
    accounts = app[CONFIG].accounts
    hasher = PasswordHasher(
        accounts.bcrypt_cost, accounts.hash_workers, accounts.hash_queue
    )
    await hasher.warm_up()
    app[HASHER] = hasher
    yield
    hasher.close()


async def _upstream_client(app: web.Application) -> AsyncIterator[None]:
    client = aiohttp.ClientSession(
        # Timeouts are set per request, from the route.
        # Bodies pass through as they are; cookies belong to the clients,
        # never to the gateway's shared session.
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=60),
    )
    app[UPSTREAM_CLIENT] = client
    yield
    await client.close()
