--- Spawn+wait of /bin/true: COUNT processes, CONC in flight at a time;
-- prints "lasync <processes per second>".
--   lua5.4 bench/spawn/spawn_lasync.lua COUNT CONC   (checkout on the Lua paths)
local lasync = require "lasync"

local count, conc = tonumber(arg[1]) or 2000, tonumber(arg[2]) or 1

local function worker(n)
  for _ = 1, n do lasync.create_subprocess_exec({"/bin/true"}):wait() end
end

lasync.run(function()
  local started, tasks = lasync.time(), {}
  for i = 1, conc do
    tasks[i] = lasync.spawn(worker, count // conc + (i <= count % conc and 1 or 0))
  end
  for _, t in ipairs(tasks) do t:await() end
  print(("lasync %.0f"):format(count / (lasync.time() - started)))
end)
