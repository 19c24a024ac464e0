-- Refresh-token rotations.  args: token file (one refresh token a line),
-- thread count.  Each thread owns every n-th session; a token goes back in
-- the queue only as the successor its refresh returned, so no token is ever
-- presented twice (which the gateway would rightly take for reuse).
local queue = {}
local first, last = 1, 0

function init(args)
  local threads = tonumber(args[2])
  local line_number = 0
  for line in io.lines(args[1]) do
    if line_number % threads == thread_index then
      last = last + 1
      queue[last] = line
    end
    line_number = line_number + 1
  end
end

function request()
  local token = "exhausted"
  if first <= last then
    token = queue[first]
    queue[first] = nil
    first = first + 1
  end
  return wrk.format("POST", "/user/refresh-token",
                    { Authorization = "Bearer " .. token })
end

function response(status, headers, body)
  if status == 200 then
    local successor = string.match(body, '"refresh_token": *"([^"]+)"')
    if successor then
      last = last + 1
      queue[last] = successor
    end
  end
end
