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
        [_describe(info, claims.session_id) for info in sessions],
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


def _describe(info: SessionInfo, current_session: str) -> dict[str, object]:
    return {
        "id": info.session_id,
        "created_at": _iso(info.created_at_ms),
        "last_used_at": _iso(info.last_used_at_ms),
        "expires_in": info.expires_in,
        "user_agent": info.user_agent,
        "ip": info.ip,
        "current": info.session_id == current_session,
    }


def _iso(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
