"""A user's view of their own sessions: list them, end one, end them all."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from aiohttp import web

from gateway.auth.access import announce_ended, authenticate
from gateway.errors import NotFound
from gateway.keys import STORE
from gateway.sessions import SessionInfo

routes = web.RouteTableDef()
_SESSION_ID = re.compile(r"[0-9a-f]{32}")


@routes.get("/user/sessions")
async def list_sessions(request: web.Request) -> web.Response:
    claims = authenticate(request)
    sessions = await request.app[STORE].list_sessions(claims.user_id)
    return web.json_response(
        [
            describe_session(info) | {"current": info.session_id == claims.session_id}
            for info in sessions
        ],
        headers={"Cache-Control": "no-store"},
    )


@routes.delete("/user/sessions/{session_id}")
async def revoke_session(request: web.Request) -> web.Response:
    claims = authenticate(request)
    session_id = request.match_info["session_id"]
    # Someone else's session and no session at all look the same: 404.
    if not _SESSION_ID.fullmatch(session_id):
        raise NotFound("no such session")
    if not await request.app[STORE].revoke(claims.user_id, session_id):
        raise NotFound("no such session")
    await announce_ended(request, claims.user_id, [session_id], "revoked by user")
    return web.Response(status=204)


@routes.post("/user/logout-all")
async def logout_all(request: web.Request) -> web.Response:
    claims = authenticate(request)
    ended = await request.app[STORE].revoke_all(claims.user_id)
    # The caller's own session may already be gone; its token dies regardless.
    if claims.session_id not in ended:
        ended.append(claims.session_id)
    await announce_ended(request, claims.user_id, ended, "logout everywhere")
    return web.Response(status=204)


def describe_session(info: SessionInfo) -> dict[str, object]:
    """A session as JSON, for its owner here and for the admin command line."""
    return {
        "id": info.session_id,
        "created_at": iso_time(info.created_at_ms / 1000),
        "last_used_at": iso_time(info.last_used_at_ms / 1000),
        "expires_in": info.expires_in,
        "user_agent": info.user_agent,
        "ip": info.ip,
    }


def iso_time(epoch_seconds: float) -> str:
    """ISO 8601 in UTC to the second, with a ``Z``."""
    moment = datetime.fromtimestamp(epoch_seconds, tz=UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
