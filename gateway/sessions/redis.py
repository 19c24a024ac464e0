"""Sessions on Redis-compatible servers (Redis 7, Valkey, KeyDB, managed Redis).

Plain Redis has no per-member expiry in a set, so the user's session set is a
sorted set scored by each member's expiry time (epoch ms); expired members and
their records are pruned on every write and ignored on every read.  The
revocation feed is a sorted set of ended sessions (the backlog a reconnecting
gateway reads) plus a pub/sub channel (what a connected gateway hears).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, ClassVar, cast

from redis import asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from gateway import metrics
from gateway.sessions import scripts
from gateway.sessions.base import (
    Created,
    NewSession,
    RevocationHandler,
    Rotation,
    SessionInfo,
    SessionPolicy,
    SessionStore,
    StoreUnavailable,
    now_ms,
    records_key,
    sessions_from_listing,
    sessions_key,
    throttle_key,
)

log = logging.getLogger("gateway.store")

StoreClient = aioredis.Redis | RedisCluster
REVOKED_KEY = "gateway:revoked-sessions"
# Seconds between pings on the revocation subscription; silence for three
# of them counts as a lost connection.
FEED_HEARTBEAT_S = 2.0
REVOCATION_CHANNEL = "gateway:revocations"
_ROTATIONS = {
    1: Rotation.ROTATED,
    2: Rotation.RETRIED,
    3: Rotation.SUPERSEDED,
    -2: Rotation.REUSED,
    0: Rotation.UNKNOWN,
}

PRIMITIVES = """
local function live(id, now)
  local score = redis.call('ZSCORE', KEYS[1], id)
  return score and tonumber(score) > now
end
local function add(id, expires, now, record)
  redis.call('ZADD', KEYS[1], expires, id)
  redis.call('HSET', KEYS[2], id, record)
end
local update = add
local function drop(id)
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
end
local function members(now)
  return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ms(now), '+inf')
end
local function prune(now)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ms(now))) do
    drop(id)
  end
end
local function tidy(now, expires)
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('PEXPIREAT', KEYS[1], last[2])
    redis.call('PEXPIREAT', KEYS[2], last[2])
  end
end
local function ttl(id, now)
  local score = redis.call('ZSCORE', KEYS[1], id)
  if not score then return -2 end
  return math.ceil((tonumber(score) - now) / 1000)
end
"""


# GCRA on one key holding the theoretical arrival time (epoch ms).
# KEYS: bucket.  ARGV: capacity, interval ms, now.  Returns seconds to wait.
THROTTLE_SCRIPT = """
local capacity = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local arrival = tonumber(redis.call('GET', KEYS[1]) or '0')
if arrival < now then arrival = now end
arrival = arrival + interval
local excess = arrival - now - capacity * interval
if excess > 0 then
  return math.ceil(excess / 1000)
end
redis.call('SET', KEYS[1], string.format('%d', arrival), 'PX', arrival - now)
return 0
"""


class RedisSessionStore(SessionStore):
    kind = "redis"
    primitives: ClassVar[str] = PRIMITIVES

    def __init__(self, client: StoreClient, policy: SessionPolicy) -> None:
        super().__init__(policy)
        self.client = client
        self._scripts = {
            name: client.register_script(source)
            for name, source in scripts.build(self.primitives).items()
        }
        self._throttle = client.register_script(THROTTLE_SCRIPT)

    async def create(self, session: NewSession) -> Created:
        args: list[str | int] = [
            session.session_id,
            session.token_hash,
            now_ms(),
            self.policy.idle_ms,
            self.policy.absolute_ms,
            session.ip,
            session.user_agent,
            self.policy.max_per_user,
        ]
        reply = await self._run("create", session.user_id, args)
        return Created(int(reply[0]), tuple(str(sid) for sid in reply[1:]))

    async def rotate(
        self,
        user_id: str,
        session_id: str,
        presented_hash: str,
        successor_hash: str,
        in_doubt: bool = False,
    ) -> Rotation:
        args: list[str | int] = [
            session_id,
            presented_hash,
            successor_hash,
            now_ms(),
            self.policy.idle_ms,
            self.policy.grace_ms,
            1 if self.policy.reissue_in_grace else 0,
            1 if in_doubt else 0,
        ]
        return _ROTATIONS[int(await self._run("rotate", user_id, args))]

    async def revoke(
        self, user_id: str, session_id: str, token_hash: str | None = None
    ) -> bool:
        args: list[str | int] = [session_id, token_hash or "", now_ms()]
        return int(await self._run("revoke", user_id, args)) == 1

    async def revoke_all(self, user_id: str, keep: str | None = None) -> list[str]:
        ended = await self._run("revoke_all", user_id, [keep or "", now_ms()])
        return [str(session_id) for session_id in ended]

    async def remaining(self, user_id: str, session_id: str) -> int | None:
        # The listing script already knows how each backend reads time left.
        for info in await self.list_sessions(user_id):
            if info.session_id == session_id:
                return info.expires_in
        return None

    async def list_sessions(self, user_id: str) -> list[SessionInfo]:
        flat = await self._run("list", user_id, [now_ms()])
        rows = [
            (str(flat[i]), int(flat[i + 1]), str(flat[i + 2]))
            for i in range(0, len(flat), 3)
        ]
        return sessions_from_listing(rows)

    async def publish_revocations(
        self, session_ids: Sequence[str], until_ms: int
    ) -> None:
        if not session_ids:
            return
        message = f"{until_ms} {' '.join(session_ids)}"
        async with (
            store_errors("publish_revocations"),
            self.client.pipeline(transaction=False) as pipe,
        ):
            pipe.zadd(REVOKED_KEY, dict.fromkeys(session_ids, until_ms))
            pipe.zremrangebyscore(REVOKED_KEY, "-inf", now_ms())
            await pipe.execute()
        # Not in the pipeline: a cluster pipeline refuses PUBLISH.  The
        # backlog is written first, so a gateway that misses the message
        # still finds the revocation when it next reconnects.
        async with store_errors("publish_revocations"):
            await self.client.publish(REVOCATION_CHANNEL, message)

    async def follow_revocations(
        self, on_revoked: RevocationHandler, ready: asyncio.Event | None = None
    ) -> None:
        delay = 0.1
        while True:
            try:
                await self._follow_once(on_revoked, ready)
            except (ConnectionError, TimeoutError, OSError, RedisError) as exc:
                log.warning(
                    "revocation feed lost; reconnecting",
                    extra={"error": type(exc).__name__, "retry_in_s": delay},
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def throttle(self, key: str, capacity: int, refill_s: int) -> int:
        args = [capacity, refill_s * 1000, now_ms()]
        async with store_errors("throttle"):
            wait = await self._throttle(keys=[throttle_key(key)], args=args)
        return int(wait)

    async def unthrottle(self, key: str) -> None:
        async with store_errors("unthrottle"):
            await self.client.delete(throttle_key(key))

    async def ping(self) -> None:
        async with store_errors("ping"):
            await self.client.ping()

    async def close(self) -> None:
        await self.client.aclose()

    async def _follow_once(
        self, on_revoked: RevocationHandler, ready: asyncio.Event | None
    ) -> None:
        # Subscribe before reading the backlog, so nothing falls between them.
        async with self.client.pubsub() as pubsub:
            await pubsub.subscribe(REVOCATION_CHANNEL)
            backlog = cast(
                list[tuple[str, float]],
                await self.client.zrangebyscore(
                    REVOKED_KEY, now_ms(), "+inf", withscores=True
                ),
            )
            for session_id, until in backlog:
                on_revoked(str(session_id), int(until))
            log.info("revocation feed connected", extra={"backlog": len(backlog)})
            if ready is not None:
                ready.set()
            self.feed_live = True
            try:
                await self._listen(pubsub, on_revoked)
            finally:
                self.feed_live = False

    async def _listen(self, pubsub: Any, on_revoked: RevocationHandler) -> None:
        """Deliver messages, pinging the subscription so that a connection
        dropped without a word (a NAT or balancer forgetting it) is noticed
        within a few seconds instead of never."""
        heard = time.monotonic()
        next_ping = heard + FEED_HEARTBEAT_S
        while True:
            message = await pubsub.get_message(timeout=FEED_HEARTBEAT_S / 4)
            now = time.monotonic()
            if message is not None:
                heard = now
                if message.get("type") == "message":
                    _deliver(str(message["data"]), on_revoked)
            if now - heard > 3 * FEED_HEARTBEAT_S:
                raise TimeoutError("the revocation feed went silent")
            if now >= next_ping:
                await pubsub.ping()
                next_ping = now + FEED_HEARTBEAT_S

    async def _run(self, name: str, user_id: str, args: list[str | int]) -> Any:
        keys = [sessions_key(user_id), records_key(user_id)]
        async with store_errors(name):
            return await self._scripts[name](keys=keys, args=args)


def _deliver(data: str, on_revoked: RevocationHandler) -> None:
    until, *session_ids = data.split(" ")
    try:
        until_ms = int(until)
    except ValueError:
        log.warning("ignored a malformed revocation message")
        return
    for session_id in session_ids:
        on_revoked(session_id, until_ms)


@asynccontextmanager
async def store_errors(operation: str) -> AsyncIterator[None]:
    """Time the operation, and turn any client error into
    :class:`StoreUnavailable`, logged once."""
    try:
        with metrics.timed(metrics.STORE_SECONDS, metrics.STORE_ERRORS, operation):
            yield
    except (ConnectionError, TimeoutError, OSError, RedisError) as exc:
        log.warning("store %s failed: %s: %s", operation, type(exc).__name__, exc)
        raise StoreUnavailable(operation) from exc
