--- GET/SET round trips of Debian's lua-redis against redis-server for DUR
-- seconds, on one of three socket layers (bench/redis_peers.sh runs all):
--   lua5.4 bench/redis/client.lua MODE PORT DUR TASKS
-- MODE: lasync   TASKS tasks, a connection each, over lasync.socket.install()
--       copas    TASKS copas threads, a connection each (copas.wrap, as
--                copas users do), over LuaSocket
--       blocking one connection on plain blocking LuaSocket (TASKS unused)
-- Prints "ops=N secs=S rate=R" (one op: one SET or one GET, answered).
package.path = package.path .. ";/usr/share/lua/5.3/?.lua;/usr/share/lua/5.2/?.lua"
local mode, port, dur, ntasks = arg[1], tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4])
assert(mode and port and dur and ntasks, "usage: client.lua MODE PORT DUR TASKS")

-- SET then GET of a key of this worker's until clock() passes the end;
-- returns the number of ops.
local function work(c, id, clock, stop)
  local key, ops = "bench:" .. id, 0
  while clock() < stop do
    c:set(key, "value-" .. ops)
    assert(c:get(key) == "value-" .. ops)
    ops = ops + 2
  end
  return ops
end

local function report(ops, secs)
  print(("ops=%d secs=%.3f rate=%d"):format(ops, secs, math.floor(ops / secs)))
end

local modes = {}

function modes.lasync()
  local lasync = require "lasync"
  require("lasync.socket").install()
  local redis = require "redis"
  lasync.run(function()
    local start = lasync.time()
    local stop, total = start + dur, 0
    lasync.task_group(function(tg)
      for i = 1, ntasks do
        tg:spawn(function()
          local c = redis.connect("127.0.0.1", port)
          local ops = work(c, i, lasync.time, stop)  -- suspends: add after
          total = total + ops
          c:quit()
        end)
      end
    end)
    report(total, lasync.time() - start)
  end)
end

function modes.copas()
  local socket = require "socket"
  local copas = require "copas"
  local redis = require "redis"
  local start = socket.gettime()
  local stop, total, done = start + dur, 0, 0
  for i = 1, ntasks do
    copas.addthread(function()
      local skt = socket.tcp()
      assert(copas.connect(skt, "127.0.0.1", port))
      skt:setoption("tcp-nodelay", true)
      local c = redis.connect {socket = copas.wrap(skt)}
      local ops = work(c, i, socket.gettime, stop)
      total = total + ops
      skt:close()
      done = done + 1
    end)
  end
  while done < ntasks do copas.step(1) end
  report(total, socket.gettime() - start)
end

function modes.blocking()
  local socket = require "socket"
  local redis = require "redis"
  local c = redis.connect("127.0.0.1", port)
  local start = socket.gettime()
  local total = work(c, 1, socket.gettime, start + dur)
  report(total, socket.gettime() - start)
  c:quit()
end

assert(modes[mode], "MODE: lasync, copas or blocking")()
