"""Lua scripts shared by the Redis and Dragonfly backends.

Each script is one atomic step on one user's keys: KEYS[1] is the session set,
KEYS[2] the hash of records (session id -> record).  Both carry the user id as
a hash tag, and no script touches an undeclared key, as Dragonfly requires.
A backend supplies the primitives (``live``, ``add``, ``update``, ``drop``,
``members``, ``prune``, ``tidy``, ``ttl``) that differ between a Dragonfly set
with per-member expiry and a Redis sorted set scored by expiry; the bodies
below are the same for both.  Times are epoch milliseconds passed in by the
caller, so no script depends on the server's clock.
"""

from __future__ import annotations

# Record fields: 1 hash, 2 previous hash, 3 rotated at, 4 created at,
# 5 last used, 6 absolute expiry, 7 ip, 8 user agent (may contain '|').
PRELUDE = """
local function parse(text)
  if not text then return nil end
  local fields, start = {}, 1
  for i = 1, 7 do
    local stop = string.find(text, '|', start, true)
    if not stop then return nil end
    fields[i] = string.sub(text, start, stop - 1)
    start = stop + 1
  end
  fields[8] = string.sub(text, start)
  return fields
end
local function ms(value)
  return string.format('%d', value)
end
"""

# ARGV: sid, hash, now, idle, absolute, ip, user agent, cap.
# Returns {expires, evicted ids...}.
CREATE = """
local now = tonumber(ARGV[3])
prune(now)
local absolute = now + tonumber(ARGV[5])
local expires = math.min(now + tonumber(ARGV[4]), absolute)
local record = table.concat(
  {ARGV[2], '', '0', ARGV[3], ARGV[3], ms(absolute), ARGV[6], ARGV[7]}, '|')
add(ARGV[1], expires, now, record)

local result = {ms(expires)}
local cap = tonumber(ARGV[8])
if cap > 0 then
  local others = {}
  for _, id in ipairs(members(now)) do
    if id ~= ARGV[1] then
      local fields = parse(redis.call('HGET', KEYS[2], id))
      table.insert(others, {id, fields and tonumber(fields[5]) or 0})
    end
  end
  table.sort(others, function(a, b) return a[2] < b[2] end)
  for i = 1, #others + 1 - cap do
    drop(others[i][1])
    table.insert(result, others[i][1])
  end
end
tidy(now, expires)
return result
"""

# ARGV: sid, presented hash, successor hash, now, idle, grace, reissue (1/0),
# in doubt (1/0: this gateway's own earlier rotation with this hash failed
# without an answer, so its successor is owed to the caller).
# Returns 1 rotated; for the previous hash within the grace window, 2 (answer
# with the successor again) or 3 (refuse, keep the session); -2 reused (the
# session is ended); 0 unknown.
ROTATE = """
local now = tonumber(ARGV[4])
local fields = nil
if live(ARGV[1], now) then
  fields = parse(redis.call('HGET', KEYS[2], ARGV[1]))
end
if not fields then
  drop(ARGV[1])
  return 0
end

if fields[1] == ARGV[2] then
  local expires = math.min(now + tonumber(ARGV[5]), tonumber(fields[6]))
  if expires <= now then
    drop(ARGV[1])
    return 0
  end
  fields[2] = fields[1]
  fields[1] = ARGV[3]
  fields[3] = ARGV[4]
  fields[5] = ARGV[4]
  update(ARGV[1], expires, now, table.concat(fields, '|'))
  tidy(now, expires)
  return 1
end

if fields[2] ~= ARGV[2] then
  return 0
end
if fields[1] == ARGV[3] and ARGV[8] == '1' then
  return 2
end
if fields[1] == ARGV[3] and now - tonumber(fields[3]) <= tonumber(ARGV[6]) then
  if ARGV[7] == '1' then
    return 2
  end
  return 3
end
drop(ARGV[1])
return -2
"""

# ARGV: sid, hash or '' (any), now.  Returns 1 if it ended the session.
# The hash may be the current one or the one just replaced: whoever holds
# either is (or was robbed by) the session's owner, and wants it ended.
REVOKE = """
local now = tonumber(ARGV[3])
if not live(ARGV[1], now) then
  drop(ARGV[1])
  return 0
end
if ARGV[2] ~= '' then
  local fields = parse(redis.call('HGET', KEYS[2], ARGV[1]))
  if not fields or (fields[1] ~= ARGV[2] and fields[2] ~= ARGV[2]) then
    return 0
  end
end
drop(ARGV[1])
return 1
"""

# ARGV: sid to keep or '', now.  Returns the ended ids.
REVOKE_ALL = """
local now = tonumber(ARGV[2])
local ended = {}
for _, id in ipairs(members(now)) do
  if id ~= ARGV[1] then
    drop(id)
    table.insert(ended, id)
  end
end
prune(now)
return ended
"""

# ARGV: now.  Returns {id, seconds left, record, ...} for live sessions.
LIST = """
local now = tonumber(ARGV[1])
local rows = {}
for _, id in ipairs(members(now)) do
  local record = redis.call('HGET', KEYS[2], id)
  local left = ttl(id, now)
  if record and left > 0 then
    table.insert(rows, id)
    table.insert(rows, left)
    table.insert(rows, record)
  end
end
return rows
"""


def build(primitives: str) -> dict[str, str]:
    """Every script, with the backend's primitives in front of its body."""
    bodies = {
        "create": CREATE,
        "rotate": ROTATE,
        "revoke": REVOKE,
        "revoke_all": REVOKE_ALL,
        "list": LIST,
    }
    return {name: PRELUDE + primitives + body for name, body in bodies.items()}
