-- Each wrk thread learns its index, so threads start at different tokens
-- (or own disjoint sessions) instead of marching in step.
local threads_made = 0

function setup(thread)
  thread:set("thread_index", threads_made)
  threads_made = threads_made + 1
end
