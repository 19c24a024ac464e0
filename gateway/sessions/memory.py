"""An embedded session store for a single process.

It keeps the same semantics as the server backends (per-member expiry, atomic
rotation with reuse detection, the per-user cap) so that ``make run`` works on
a machine without Dragonfly, but its sessions are neither shared between
processes nor kept across a restart.  No method awaits, so each one is atomic.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from gateway.sessions.base import (
    Created,
    NewSession,
    Record,
    RevocationHandler,
    Rotation,
    SessionInfo,
    SessionPolicy,
    SessionStore,
    now_ms,
    sessions_from_listing,
)

log = logging.getLogger("gateway.store")


@dataclass
class _Entry:
    record: Record
    expires_ms: int


class MemorySessionStore(SessionStore):
    kind = "memory"

    def __init__(self, policy: SessionPolicy) -> None:
        super().__init__(policy)
        self._users: dict[str, dict[str, _Entry]] = {}
        self._followers: list[RevocationHandler] = []
        # Throttle key -> theoretical arrival time (GCRA), epoch ms.
        self._buckets: dict[str, int] = {}
        log.warning(
            "using the embedded memory store: sessions live in this process "
            "only, are not shared with other gateways and are lost on restart"
        )

    async def create(self, session: NewSession) -> Created:
        now = now_ms()
        absolute = now + self.policy.absolute_ms
        expires = min(now + self.policy.idle_ms, absolute)
        record = Record(
            session.token_hash,
            "",
            0,
            now,
            now,
            absolute,
            session.ip,
            session.user_agent,
        )
        live = self._live(session.user_id, now)
        live[session.session_id] = _Entry(record, expires)
        self._users[session.user_id] = live
        evicted = self._evict(live, keep=session.session_id)
        return Created(expires, evicted)

    async def rotate(
        self,
        user_id: str,
        session_id: str,
        presented_hash: str,
        successor_hash: str,
        in_doubt: bool = False,
    ) -> Rotation:
        now = now_ms()
        live = self._live(user_id, now)
        entry = live.get(session_id)
        if entry is None:
            return Rotation.UNKNOWN
        record = entry.record

        if record.token_hash == presented_hash:
            entry.expires_ms = min(now + self.policy.idle_ms, record.absolute_ms)
            entry.record = replace(
                record,
                token_hash=successor_hash,
                previous_hash=presented_hash,
                rotated_at_ms=now,
                last_used_at_ms=now,
            )
            return Rotation.ROTATED
        if record.previous_hash != presented_hash:
            return Rotation.UNKNOWN
        if in_doubt and record.token_hash == successor_hash:
            return Rotation.RETRIED
        within_grace = now - record.rotated_at_ms <= self.policy.grace_ms
        if within_grace and record.token_hash == successor_hash:
            if self.policy.reissue_in_grace:
                return Rotation.RETRIED
            return Rotation.SUPERSEDED
        del live[session_id]
        return Rotation.REUSED

    async def revoke(
        self, user_id: str, session_id: str, token_hash: str | None = None
    ) -> bool:
        live = self._live(user_id, now_ms())
        entry = live.get(session_id)
        if entry is None:
            return False
        if token_hash is not None and token_hash not in (
            entry.record.token_hash,
            entry.record.previous_hash,
        ):
            return False
        del live[session_id]
        return True

    async def revoke_all(self, user_id: str, keep: str | None = None) -> list[str]:
        live = self._live(user_id, now_ms())
        ended = [session_id for session_id in live if session_id != keep]
        for session_id in ended:
            del live[session_id]
        return ended

    async def remaining(self, user_id: str, session_id: str) -> int | None:
        now = now_ms()
        entry = self._live(user_id, now).get(session_id)
        if entry is None:
            return None
        return math.ceil((entry.expires_ms - now) / 1000)

    async def list_sessions(self, user_id: str) -> list[SessionInfo]:
        now = now_ms()
        rows = [
            (
                session_id,
                math.ceil((entry.expires_ms - now) / 1000),
                entry.record.encode(),
            )
            for session_id, entry in self._live(user_id, now).items()
        ]
        return sessions_from_listing(rows)

    async def publish_revocations(
        self, session_ids: Sequence[str], until_ms: int
    ) -> None:
        for follower in self._followers:
            for session_id in session_ids:
                follower(session_id, until_ms)

    async def follow_revocations(
        self, on_revoked: RevocationHandler, ready: asyncio.Event | None = None
    ) -> None:
        self._followers.append(on_revoked)
        self.feed_live = True
        if ready is not None:
            ready.set()
        try:
            await asyncio.Event().wait()
        finally:
            self._followers.remove(on_revoked)

    async def throttle(self, key: str, capacity: int, refill_s: int) -> int:
        now = now_ms()
        if len(self._buckets) > 100_000:
            self._buckets = {k: t for k, t in self._buckets.items() if t > now}
        interval = refill_s * 1000
        arrival = max(self._buckets.get(key, 0), now) + interval
        excess = arrival - now - capacity * interval
        if excess > 0:
            return math.ceil(excess / 1000)
        self._buckets[key] = arrival
        return 0

    async def unthrottle(self, key: str) -> None:
        self._buckets.pop(key, None)

    async def ping(self) -> None:
        return None

    def _live(self, user_id: str, now: int) -> dict[str, _Entry]:
        """The user's sessions with the expired ones dropped."""
        entries = self._users.get(user_id, {})
        live = {sid: entry for sid, entry in entries.items() if entry.expires_ms > now}
        if live:
            self._users[user_id] = live
        else:
            self._users.pop(user_id, None)
        return live

    def _evict(self, live: dict[str, _Entry], keep: str) -> tuple[str, ...]:
        """Drop the least recently used sessions beyond the cap."""
        cap = self.policy.max_per_user
        if cap <= 0 or len(live) <= cap:
            return ()
        others = sorted(
            (sid for sid in live if sid != keep),
            key=lambda sid: live[sid].record.last_used_at_ms,
        )
        evicted = tuple(others[: len(live) - cap])
        for session_id in evicted:
            del live[session_id]
        return evicted
