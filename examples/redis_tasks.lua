--- Debian's lua-redis, a LuaSocket library, in 100 concurrent tasks:
-- `scripts/lasync run examples/redis_tasks.lua` with redis-server on
-- 127.0.0.1:6379 (REDIS_PORT=N for another port). Prints:
--   counter = 1000 after 100 tasks
--   k:42 = 42
local lasync = require "lasync"
require("lasync.socket").install()  -- `require "socket"` is lasync's now
-- Debian ships lua-redis for Lua 5.1 to 5.3; it runs unchanged on 5.4.
package.path = package.path .. ";/usr/share/lua/5.3/?.lua"
local redis = require "redis"

local port = tonumber(os.getenv("REDIS_PORT")) or 6379
local db = redis.connect("127.0.0.1", port)
db:del("counter")

local tasks = {}
for i = 1, 100 do
  tasks[i] = lasync.spawn(function()
    local c = redis.connect("127.0.0.1", port)  -- one connection per task
    for _ = 1, 10 do c:incr("counter") end      -- each call suspends the task only
    c:set("k:" .. i, i)
    c:quit()
  end)
end
for _, t in ipairs(tasks) do t:await() end

print(("counter = %s after %d tasks"):format(db:get("counter"), #tasks))
print("k:42 = " .. db:get("k:42"))
db:quit()
