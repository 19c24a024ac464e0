"""Sessions on Dragonfly, using its native per-member expiry in sets.

``user:{<id>}:sessions`` is a real set whose members are session ids: SADDEX
adds a member together with its expiry (never SADD then FIELDEXPIRE, which a
crash in between would leave immortal), FIELDEXPIRE moves it on refresh and
FIELDTTL reads what is left.  Dragonfly has whole-second member expiry, so the
member's expiry is the record's rounded up; both must be present for a session
to be live.  Scripts declare every key they touch, as Dragonfly requires.
"""

from __future__ import annotations

from gateway.sessions.base import sessions_key
from gateway.sessions.redis import (
    _REVOKE_CHECK,
    _WRITE_RECORD,
    RedisSessionStore,
)

# Keep the set key itself no longer than its longest-lived member.
_EXTEND_SET_KEY = """
local key_ttl = redis.call('PTTL', KEYS[1])
if key_ttl == -1 or key_ttl < expires - now then
  redis.call('PEXPIRE', KEYS[1], expires - now)
end
"""

CREATE_SCRIPT = (
    _WRITE_RECORD
    + """
redis.call('SADDEX', KEYS[1], math.ceil((expires - now) / 1000), ARGV[1])
"""
    + _EXTEND_SET_KEY
    + """
return expires
"""
)

ROTATE_SCRIPT = (
    """
local now = tonumber(ARGV[4])
local record = redis.call('HMGET', KEYS[2], 'rh', 'ax')
local member = redis.call('SISMEMBER', KEYS[1], ARGV[1])
if not record[1] or member == 0 then
  redis.call('DEL', KEYS[2])
  redis.call('SREM', KEYS[1], ARGV[1])
  return 0
end
if record[1] ~= ARGV[2] then
  return -1
end
local expires = math.min(now + tonumber(ARGV[5]), tonumber(record[2]))
if expires <= now then
  redis.call('DEL', KEYS[2])
  redis.call('SREM', KEYS[1], ARGV[1])
  return 0
end
redis.call('HSET', KEYS[2], 'rh', ARGV[3], 'lu', ARGV[4])
redis.call('PEXPIREAT', KEYS[2], expires)
redis.call('FIELDEXPIRE', KEYS[1], math.ceil((expires - now) / 1000), ARGV[1])
"""
    + _EXTEND_SET_KEY
    + """
return 1
"""
)

REVOKE_SCRIPT = _REVOKE_CHECK.format(remove="SREM")


class DragonflySessionStore(RedisSessionStore):
    kind = "dragonfly"
    create_source = CREATE_SCRIPT
    rotate_source = ROTATE_SCRIPT
    revoke_source = REVOKE_SCRIPT

    async def _live_members(self, user_id: str) -> list[str]:
        # SMEMBERS already hides members whose expiry has passed.
        members = await self.client.smembers(sessions_key(user_id))
        return sorted(str(member) for member in members)

    async def _member_ttls(
        self, user_id: str, session_ids: list[str]
    ) -> dict[str, int]:
        key = sessions_key(user_id)
        async with self.client.pipeline(transaction=False) as pipe:
            for session_id in session_ids:
                pipe.execute_command("FIELDTTL", key, session_id)
            replies = await pipe.execute()
        # FIELDTTL: seconds left, -1 no expiry, -2 no key, -3 no member.
        return {
            session_id: int(ttl)
            for session_id, ttl in zip(session_ids, replies, strict=True)
            if int(ttl) > 0
        }
