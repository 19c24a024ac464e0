-- Authenticated GETs.  args: token file (one access JWT a line), path.
-- Every request carries the next of many distinct tokens, so nothing keyed
-- on the token (a cache, a branch predictor's luck) flatters the result.
local tokens = {}
local position = 0
local path = "/resource"

function init(args)
  for line in io.lines(args[1]) do
    tokens[#tokens + 1] = "Bearer " .. line
  end
  path = args[2] or path
  position = (thread_index * 997) % #tokens
end

function request()
  position = position % #tokens + 1
  return wrk.format("GET", path, { Authorization = tokens[position] })
end
