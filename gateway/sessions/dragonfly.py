"""Sessions on Dragonfly, using its native per-member expiry.

``user:{<id>}:sessions`` is a real set whose members are session ids: SADDEX
adds a member together with its expiry (never SADD then FIELDEXPIRE, which a
crash in between would leave immortal), FIELDEXPIRE moves it on refresh and
FIELDTTL reads what is left.  The records hash uses HSETEX, so each record
expires with its member.  Dragonfly expires members in whole seconds; the
scripts round up.  Everything else (scripts, the revocation feed) is shared
with the Redis backend.
"""

from __future__ import annotations

from typing import ClassVar

from gateway.sessions.base import throttle_key
from gateway.sessions.redis import RedisSessionStore, store_errors

PRIMITIVES = """
local function live(id, now)
  return redis.call('SISMEMBER', KEYS[1], id) == 1
end
local function seconds(expires, now)
  return math.ceil((expires - now) / 1000)
end
local function add(id, expires, now, record)
  local left = seconds(expires, now)
  redis.call('SADDEX', KEYS[1], left, id)
  redis.call('HSETEX', KEYS[2], left, id, record)
end
local function update(id, expires, now, record)
  local left = seconds(expires, now)
  redis.call('FIELDEXPIRE', KEYS[1], left, id)
  redis.call('HSETEX', KEYS[2], left, id, record)
end
local function drop(id)
  redis.call('SREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
end
local function members(now)
  return redis.call('SMEMBERS', KEYS[1])
end
local function prune(now)
end
local function tidy(now, expires)
  -- Members expire by themselves; the keys must not outlive the last one.
  for _, key in ipairs(KEYS) do
    local left = redis.call('PTTL', key)
    if left == -1 or left < expires - now then
      redis.call('PEXPIRE', key, expires - now)
    end
  end
end
local function ttl(id, now)
  return redis.call('FIELDTTL', KEYS[1], id)
end
"""


class DragonflySessionStore(RedisSessionStore):
    kind = "dragonfly"
    primitives: ClassVar[str] = PRIMITIVES

    async def throttle(self, key: str, capacity: int, refill_s: int) -> int:
        # Dragonfly's built-in GCRA limiter: max_burst + 1 attempts at once,
        # one more per period; the reply's fourth value is the wait, or -1.
        async with store_errors("throttle"):
            reply = await self.client.execute_command(
                "CL.THROTTLE", throttle_key(key), capacity - 1, 1, refill_s, 1
            )
        limited, wait = int(reply[0]), int(reply[3])
        return max(wait, 1) if limited else 0
