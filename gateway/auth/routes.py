"""The account endpoints: register, login, refresh-token, logout, password."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TypeVar

from aiohttp import web

from gateway import metrics
from gateway.auth.access import announce_ended, authenticate
from gateway.auth.body import read_json_object, require_string
from gateway.auth.passwords import HashingOverloaded
from gateway.auth.policy import check_password, check_username, username_key
from gateway.auth.throttling import (
    TooManyRequests,
    admit_password_attempt,
    admit_registration,
    password_accepted,
)
from gateway.auth.tokens import RefreshToken, bearer_token
from gateway.errors import Conflict, ServiceUnavailable, Unauthorized
from gateway.keys import (
    CONFIG,
    HASHER,
    PENDING_ROTATIONS,
    ROTATION_KEY,
    STORE,
    TOKENS,
    TRUSTED_PROXIES,
    USERS,
)
from gateway.sessions import NewSession, Rotation, StoreUnavailable
from gateway.users import UsernameTaken

log = logging.getLogger("gateway.auth")
routes = web.RouteTableDef()
T = TypeVar("T")

# Longest user agent kept with a session; the rest says nothing new.
MAX_USER_AGENT = 256


@routes.post("/user/register")
async def register(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    body = await read_json_object(request, config.limits.json_body)
    username = require_string(body, "username")
    password = require_string(body, "password")
    key = check_username(username, config.accounts)
    check_password(password, config.accounts)
    # Saying "taken" is a deliberate leak (see README).  Every registration
    # counts, taken name or not, so that a 429 says nothing about the name,
    # and it counts before bcrypt runs.
    address = request.app[TRUSTED_PROXIES].client_address(request)
    await admit_registration(request, address)

    hashed = await _hashing(request.app[HASHER].hash(password))
    try:
        user = await request.app[USERS].create_user(username, key, hashed)
    except UsernameTaken:
        raise Conflict("that username is taken") from None

    request["user_id"] = user.id
    log.info("user registered", extra={"user_id": user.id})
    return web.json_response({"id": user.id, "username": user.username}, status=201)


@routes.post("/user/login")
async def login(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    body = await read_json_object(request, config.limits.json_body)
    username = require_string(body, "username")
    password = require_string(body, "password")

    name_key = username_key(username)
    address = request.app[TRUSTED_PROXIES].client_address(request)
    try:
        await admit_password_attempt(request, f"login:{name_key}", address)
    except TooManyRequests:
        metrics.LOGINS.labels("throttled").inc()
        raise

    user = await request.app[USERS].find_by_name(name_key)
    # Unknown names are checked against a stand-in hash: same time, same answer.
    stored = user.password_hash if user is not None else None
    matches = await _hashing(request.app[HASHER].verify(password, stored))
    if user is None or not matches or user.disabled:
        metrics.LOGINS.labels("rejected").inc()
        raise Unauthorized("wrong username or password")
    metrics.LOGINS.labels("success").inc()
    await password_accepted(request, f"login:{name_key}", address)
    verified_hash = await _upgrade_hash(request, user.id, password, user.password_hash)

    token = RefreshToken.new(user.id)
    created = await request.app[STORE].create(
        NewSession(
            user_id=user.id,
            session_id=token.session_id,
            token_hash=token.hash,
            user_agent=_printable(request.headers.get("User-Agent", "")),
            ip=address,
        )
    )
    request["user_id"] = user.id
    await announce_ended(request, user.id, created.evicted, "session cap")
    await _recheck_account(request, name_key, verified_hash, token.session_id)
    metrics.SESSIONS_CREATED.inc()
    log.info("session created", extra={"user_id": user.id, "sid": token.session_id})
    return _token_pair(request, token)


@routes.post("/user/refresh-token")
async def refresh_token(request: web.Request) -> web.Response:
    presented = _refresh_token_from(request)
    successor = presented.successor(request.app[ROTATION_KEY])
    pending = request.app[PENDING_ROTATIONS]

    try:
        outcome = await request.app[STORE].rotate(
            presented.user_id,
            presented.session_id,
            presented.hash,
            successor.hash,
            in_doubt=pending.holds(presented),
        )
    except StoreUnavailable:
        pending.add(presented)
        raise
    metrics.REFRESHES.labels(outcome.value).inc()
    if outcome in (Rotation.ROTATED, Rotation.RETRIED):
        pending.discard(presented)
        request["user_id"] = presented.user_id
        return _token_pair(request, successor)

    if outcome is Rotation.REUSED:
        request["user_id"] = presented.user_id
        log.warning(
            "refresh token reuse detected; session revoked",
            extra={"user_id": presented.user_id, "sid": presented.session_id},
        )
        await announce_ended(
            request, presented.user_id, [presented.session_id], "reuse"
        )
    raise Unauthorized("the refresh token is not valid", error="invalid_token")


@routes.post("/user/logout")
async def logout(request: web.Request) -> web.Response:
    token = _refresh_token_from(request)
    request["user_id"] = token.user_id
    ended = await request.app[STORE].revoke(token.user_id, token.session_id, token.hash)
    if ended:
        await announce_ended(request, token.user_id, [token.session_id], "logout")
    return web.Response(status=204)


@routes.post("/user/password")
async def change_password(request: web.Request) -> web.Response:
    claims = authenticate(request)
    config = request.app[CONFIG]
    body = await read_json_object(request, config.limits.json_body)
    current = require_string(body, "current_password")
    new = require_string(body, "new_password")
    check_password(new, config.accounts)

    address = request.app[TRUSTED_PROXIES].client_address(request)
    await admit_password_attempt(request, f"password:{claims.user_id}", address)
    users = request.app[USERS]
    user = await users.find_by_id(claims.user_id)
    stored = user.password_hash if user is not None else None
    if not await _hashing(request.app[HASHER].verify(current, stored)):
        raise Unauthorized("the current password is wrong")
    await password_accepted(request, f"password:{claims.user_id}", address)

    hashed = await _hashing(request.app[HASHER].hash(new))
    await users.set_password(claims.user_id, hashed)
    ended = await request.app[STORE].revoke_all(claims.user_id, keep=claims.session_id)
    await announce_ended(request, claims.user_id, ended, "password change")
    return web.Response(status=204)


async def _upgrade_hash(
    request: web.Request, user_id: str, password: str, stored: str
) -> str:
    """Rehash at the configured cost a password hashed with a lower one;
    the hash now stored."""
    hasher = request.app[HASHER]
    if not hasher.needs_upgrade(stored):
        return stored
    upgraded = await _hashing(hasher.hash(password))
    await request.app[USERS].set_password(user_id, upgraded)
    log.info("password hash upgraded", extra={"user_id": user_id, "cost": hasher.cost})
    return upgraded


async def _recheck_account(
    request: web.Request, name_key: str, verified_hash: str, session_id: str
) -> None:
    """End the new session if the password changed, or the account was
    disabled or deleted, while this login was under way.

    Those changes write the database first and then end the user's sessions;
    a session created after that sweep is caught here, one created before
    it by the sweep.  Either way no session outlives the change.
    """
    user = await request.app[USERS].find_by_name(name_key)
    if user is not None and user.password_hash == verified_hash and not user.disabled:
        return
    user_id = request["user_id"]
    await request.app[STORE].revoke(user_id, session_id)
    await announce_ended(request, user_id, [session_id], "account changed")
    metrics.LOGINS.labels("rejected").inc()
    raise Unauthorized("wrong username or password")


def _refresh_token_from(request: web.Request) -> RefreshToken:
    credentials = bearer_token(request.headers.get("Authorization"))
    if credentials is None:
        raise Unauthorized("a refresh token is required")
    token = RefreshToken.parse(credentials)
    if token is None:
        raise Unauthorized("the refresh token is malformed", error="invalid_token")
    return token


def _token_pair(request: web.Request, refresh: RefreshToken) -> web.Response:
    tokens = request.app[TOKENS]
    return web.json_response(
        {
            "access_token": tokens.issue(refresh.user_id, refresh.session_id),
            "refresh_token": str(refresh),
            "token_type": "Bearer",
            "expires_in": tokens.ttl,
        },
        headers={"Cache-Control": "no-store"},
    )


def _printable(text: str) -> str:
    """A user agent fit to store and show: no control characters, bounded."""
    cleaned = "".join(ch for ch in text if ch.isprintable())
    return cleaned[:MAX_USER_AGENT]


async def _hashing(job: Awaitable[T]) -> T:
    try:
        return await job
    except HashingOverloaded:
        raise ServiceUnavailable("too many logins at once; retry shortly") from None
