--- hello.lua: three tasks sleep at the same time, so they report in the
-- order they finish, not the order they were started, and the whole run
-- takes as long as the longest sleep, not the sum of them.
--   lasync run examples/hello.lua [NAME]
-- The top level is the main task: it may await directly.
local lasync = require "lasync"

local who = ... or "world"

local function greet(name, delay)
  lasync.sleep(delay)
  print(("%-8s hello, %s (after %.0f ms)"):format(name, who, delay * 1000))
  return delay
end

local started = lasync.time()
local tasks = {}
for i, runner in ipairs { { "tortoise", 0.3 }, { "hare", 0.1 }, { "snail", 0.2 } } do
  tasks[i] = lasync.spawn(greet, runner[1], runner[2])
end

local total = 0
for _, t in ipairs(tasks) do total = total + t:await() end
print(("%.1f s of sleeping took %.1f s"):format(total, lasync.time() - started))
