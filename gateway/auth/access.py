"""Checking access tokens, and ending sessions so that their tokens die too.

Both sides of revocation meet here: a request is refused when its session is
in the local revoked list, and ending sessions puts them in that list here and
announces them through the store to every other gateway.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from aiohttp import web

from gateway import metrics
from gateway.auth.tokens import AccessClaims, bearer_token
from gateway.config import JwtConfig
from gateway.errors import Unauthorized
from gateway.keys import CONFIG, REVOKED, STORE, TOKENS
from gateway.sessions import StoreUnavailable
from gateway.sessions.base import now_ms

log = logging.getLogger("gateway.auth")

# Extra time a revocation is kept, for clocks a little apart between gateways.
CLOCK_SKEW_MS = 5000


def authenticate(request: web.Request) -> AccessClaims:
    """The claims of the request's valid access token, or 401."""
    token = bearer_token(request.headers.get("Authorization"))
    if token is None:
        raise Unauthorized("an access token is required")
    claims = request.app[TOKENS].verify(token)
    if request.app[REVOKED].is_revoked(claims.session_id):
        raise Unauthorized("the session has ended", error="invalid_token")
    request["user_id"] = claims.user_id
    return claims


async def announce_ended(
    request: web.Request, user_id: str, session_ids: Sequence[str], reason: str
) -> None:
    """Refuse these sessions' access tokens here and on every other gateway."""
    if not session_ids:
        return
    until = revocation_deadline(request.app[CONFIG].jwt)
    for session_id in session_ids:
        request.app[REVOKED].add(session_id, until)
    metrics.SESSIONS_ENDED.labels(reason).inc(len(session_ids))
    log.info(
        "sessions ended",
        extra={"user_id": user_id, "sids": list(session_ids), "reason": reason},
    )
    try:
        await request.app[STORE].publish_revocations(session_ids, until)
    except StoreUnavailable:
        log.error(
            "ended sessions not announced to other gateways",
            extra={"user_id": user_id, "sids": list(session_ids)},
        )
        raise


def revocation_deadline(jwt: JwtConfig) -> int:
    """Until when a session ending now must be refused: its last access token
    may live ``access_ttl`` seconds more, plus the leeway verification
    grants, on a clock a little ahead of ours."""
    lifetime_s = jwt.access_ttl + jwt.leeway
    return now_ms() + int(lifetime_s * 1000) + CLOCK_SKEW_MS
