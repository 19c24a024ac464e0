-- A login storm.  args: user count, name prefix, password.  Users are
-- taken in turn; each gets its own client address through X-Forwarded-For
-- (the gateway trusts loopback in this run) from 198.18.0.0/15, the range
-- RFC 2544 sets aside for benchmarks, so the per-address throttle sees many
-- clients, as it would in production, rather than one abusive one.
local users, prefix, password
local position = 0

function init(args)
  users = tonumber(args[1])
  prefix = args[2]
  password = args[3]
  position = (thread_index * 131) % users
end

function request()
  position = position % users + 1
  local body = string.format('{"username": "%s%05d", "password": "%s"}',
                             prefix, position, password)
  local address = string.format("198.18.%d.%d",
                                math.floor(position / 250), position % 250 + 1)
  return wrk.format("POST", "/user/login", {
    ["Content-Type"] = "application/json",
    ["X-Forwarded-For"] = address,
    ["User-Agent"] = "gateway-bench/1",
  }, body)
end
