"""Sessions on Redis-compatible servers (Redis 7, Valkey, KeyDB, managed Redis).

Plain Redis has no per-member expiry in a set, so the user's session set is a
sorted set scored by each member's expiry time (epoch ms); expired members are
pruned on every write and ignored on every read.  Each change is one Lua script,
so a check and the write that depends on it can never interleave.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from gateway.sessions.base import (
    Lifetimes,
    NewSession,
    Rotation,
    SessionInfo,
    SessionStore,
    StoreUnavailable,
    now_ms,
    record_key,
    sessions_key,
)

log = logging.getLogger("gateway.store")

# Shared by both backends: write the record and give it the member's expiry.
# KEYS: set, record.  ARGV: sid, token_hash, now, idle, absolute, ua, ip.
_WRITE_RECORD = """
local now = tonumber(ARGV[3])
local absolute = now + tonumber(ARGV[5])
local expires = math.min(now + tonumber(ARGV[4]), absolute)
redis.call('HSET', KEYS[2], 'rh', ARGV[2], 'ca', ARGV[3], 'lu', ARGV[3],
           'ax', absolute, 'ua', ARGV[6], 'ip', ARGV[7])
redis.call('PEXPIREAT', KEYS[2], expires)
"""

CREATE_SCRIPT = (
    _WRITE_RECORD
    + """
redis.call('ZADD', KEYS[1], expires, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return expires
"""
)

# KEYS: set, record.  ARGV: sid, presented_hash, new_hash, now, idle.
# Returns 1 rotated, 0 unknown, -1 stale.
ROTATE_SCRIPT = """
local now = tonumber(ARGV[4])
local record = redis.call('HMGET', KEYS[2], 'rh', 'ax')
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not record[1] or not score or tonumber(score) <= now then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
if record[1] ~= ARGV[2] then
  return -1
end
local expires = math.min(now + tonumber(ARGV[5]), tonumber(record[2]))
if expires <= now then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
redis.call('HSET', KEYS[2], 'rh', ARGV[3], 'lu', ARGV[4])
redis.call('PEXPIREAT', KEYS[2], expires)
redis.call('ZADD', KEYS[1], expires, ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return 1
"""

# KEYS: set, record.  ARGV: sid, token_hash or ''.  Returns 1 if it ended one.
_REVOKE_CHECK = """
local current = redis.call('HGET', KEYS[2], 'rh')
if not current then
  redis.call('{remove}', KEYS[1], ARGV[1])
  return 0
end
if ARGV[2] ~= '' and current ~= ARGV[2] then
  return 0
end
redis.call('DEL', KEYS[2])
redis.call('{remove}', KEYS[1], ARGV[1])
return 1
"""
REVOKE_SCRIPT = _REVOKE_CHECK.format(remove="ZREM")

_RECORD_FIELDS = ("ca", "lu", "ua", "ip")


class RedisSessionStore(SessionStore):
    kind = "redis"
    create_source = CREATE_SCRIPT
    rotate_source = ROTATE_SCRIPT
    revoke_source = REVOKE_SCRIPT

    def __init__(self, client: aioredis.Redis, lifetimes: Lifetimes) -> None:
        super().__init__(lifetimes)
        self.client = client
        self._create = client.register_script(self.create_source)
        self._rotate = client.register_script(self.rotate_source)
        self._revoke = client.register_script(self.revoke_source)

    async def create(self, session: NewSession) -> int:
        keys = [
            sessions_key(session.user_id),
            record_key(session.user_id, session.session_id),
        ]
        args: list[str | int] = [
            session.session_id,
            session.token_hash,
            now_ms(),
            self.lifetimes.idle_ms,
            self.lifetimes.absolute_ms,
            session.user_agent,
            session.ip,
        ]
        async with store_errors("create"):
            expires = await self._create(keys=keys, args=args)
        return int(expires)

    async def rotate(
        self, user_id: str, session_id: str, presented_hash: str, new_hash: str
    ) -> Rotation:
        keys = [sessions_key(user_id), record_key(user_id, session_id)]
        args: list[str | int] = [
            session_id,
            presented_hash,
            new_hash,
            now_ms(),
            self.lifetimes.idle_ms,
        ]
        async with store_errors("rotate"):
            outcome = int(await self._rotate(keys=keys, args=args))
        if outcome == 1:
            return Rotation.ROTATED
        return Rotation.STALE if outcome == -1 else Rotation.UNKNOWN

    async def revoke(
        self, user_id: str, session_id: str, token_hash: str | None = None
    ) -> bool:
        keys = [sessions_key(user_id), record_key(user_id, session_id)]
        async with store_errors("revoke"):
            ended = await self._revoke(keys=keys, args=[session_id, token_hash or ""])
        return int(ended) == 1

    async def remaining(self, user_id: str, session_id: str) -> int | None:
        async with store_errors("remaining"):
            ttls = await self._member_ttls(user_id, [session_id])
        return ttls.get(session_id)

    async def list_sessions(self, user_id: str) -> list[SessionInfo]:
        async with store_errors("list"):
            members = await self._live_members(user_id)
            if not members:
                return []
            ttls = await self._member_ttls(user_id, members)
            async with self.client.pipeline(transaction=False) as pipe:
                for session_id in members:
                    pipe.hmget(record_key(user_id, session_id), _RECORD_FIELDS)
                records = await pipe.execute()
        sessions = [
            _session_info(session_id, record, ttls.get(session_id))
            for session_id, record in zip(members, records, strict=True)
        ]
        live = [info for info in sessions if info is not None]
        return sorted(live, key=lambda info: info.created_at_ms)

    async def ping(self) -> None:
        async with store_errors("ping"):
            await self.client.ping()

    async def close(self) -> None:
        await self.client.aclose()

    async def _live_members(self, user_id: str) -> list[str]:
        members = await self.client.zrangebyscore(
            sessions_key(user_id), f"({now_ms()}", "+inf"
        )
        return [str(member) for member in members]

    async def _member_ttls(
        self, user_id: str, session_ids: list[str]
    ) -> dict[str, int]:
        scores = await self.client.zmscore(sessions_key(user_id), session_ids)
        now = now_ms()
        return {
            session_id: math.ceil((score - now) / 1000)
            for session_id, score in zip(session_ids, scores, strict=True)
            if score is not None and score > now
        }


def _session_info(
    session_id: str, record: list[Any], expires_in: int | None
) -> SessionInfo | None:
    created, last_used, user_agent, ip = record
    if created is None or expires_in is None:
        return None
    return SessionInfo(
        session_id=session_id,
        created_at_ms=int(created),
        last_used_at_ms=int(last_used),
        expires_in=expires_in,
        user_agent=user_agent or "",
        ip=ip or "",
    )


@asynccontextmanager
async def store_errors(operation: str) -> AsyncIterator[None]:
    """Turn any client error into :class:`StoreUnavailable`, logged once."""
    try:
        yield
    except (ConnectionError, TimeoutError, OSError, RedisError) as exc:
        log.warning("store %s failed: %s: %s", operation, type(exc).__name__, exc)
        raise StoreUnavailable(operation) from exc
