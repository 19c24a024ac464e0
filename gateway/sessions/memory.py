"""An embedded session store for a single process.

It keeps the same semantics as the server backends (per-member expiry, atomic
rotation) so that ``make run`` works on a machine without Dragonfly, but its
sessions are neither shared between processes nor kept across a restart.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from gateway.sessions.base import (
    Lifetimes,
    NewSession,
    Rotation,
    SessionInfo,
    SessionStore,
    now_ms,
)

log = logging.getLogger("gateway.store")


@dataclass
class _Record:
    token_hash: str
    created_at_ms: int
    last_used_at_ms: int
    absolute_ms: int
    expires_ms: int
    user_agent: str
    ip: str


class MemorySessionStore(SessionStore):
    kind = "memory"

    def __init__(self, lifetimes: Lifetimes) -> None:
        super().__init__(lifetimes)
        self._users: dict[str, dict[str, _Record]] = {}
        log.warning(
            "using the embedded memory store: sessions live in this process "
            "only, are not shared with other gateways and are lost on restart"
        )

    async def create(self, session: NewSession) -> int:
        now = now_ms()
        absolute = now + self.lifetimes.absolute_ms
        expires = min(now + self.lifetimes.idle_ms, absolute)
        live = self._live(session.user_id, now)
        live[session.session_id] = _Record(
            token_hash=session.token_hash,
            created_at_ms=now,
            last_used_at_ms=now,
            absolute_ms=absolute,
            expires_ms=expires,
            user_agent=session.user_agent,
            ip=session.ip,
        )
        self._users[session.user_id] = live
        return expires

    async def rotate(
        self, user_id: str, session_id: str, presented_hash: str, new_hash: str
    ) -> Rotation:
        now = now_ms()
        record = self._live(user_id, now).get(session_id)
        if record is None:
            return Rotation.UNKNOWN
        if record.token_hash != presented_hash:
            return Rotation.STALE

        record.expires_ms = min(now + self.lifetimes.idle_ms, record.absolute_ms)
        record.token_hash = new_hash
        record.last_used_at_ms = now
        return Rotation.ROTATED

    async def revoke(
        self, user_id: str, session_id: str, token_hash: str | None = None
    ) -> bool:
        live = self._live(user_id, now_ms())
        record = live.get(session_id)
        if record is None:
            return False
        if token_hash is not None and record.token_hash != token_hash:
            return False
        del live[session_id]
        return True

    async def remaining(self, user_id: str, session_id: str) -> int | None:
        now = now_ms()
        record = self._live(user_id, now).get(session_id)
        if record is None:
            return None
        return math.ceil((record.expires_ms - now) / 1000)

    async def list_sessions(self, user_id: str) -> list[SessionInfo]:
        now = now_ms()
        records = sorted(
            self._live(user_id, now).items(), key=lambda item: item[1].created_at_ms
        )
        return [
            SessionInfo(
                session_id=session_id,
                created_at_ms=record.created_at_ms,
                last_used_at_ms=record.last_used_at_ms,
                expires_in=math.ceil((record.expires_ms - now) / 1000),
                user_agent=record.user_agent,
                ip=record.ip,
            )
            for session_id, record in records
        ]

    async def ping(self) -> None:
        return None

    def _live(self, user_id: str, now: int) -> dict[str, _Record]:
        """The user's sessions with the expired ones dropped."""
        sessions = self._users.get(user_id, {})
        live = {sid: rec for sid, rec in sessions.items() if rec.expires_ms > now}
        if live:
            self._users[user_id] = live
        else:
            self._users.pop(user_id, None)
        return live
