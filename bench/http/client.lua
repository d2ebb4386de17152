--- bench/http/client.lua URL SECONDS [CONC]: lasync.httpclient's get over
-- keep-alive, CONC (default 1) tasks each doing get(URL) in a loop for
-- SECONDS (at most 60), the body checked; prints `rps=... requests=...`.
local lasync = require "lasync"
local ok, http = pcall(require, "lasync.http")
local get = ok and http.get or require("lasync.httpclient").get

local url, secs, conc = arg[1], tonumber(arg[2] or 5), tonumber(arg[3] or 1)
assert(url and secs, "usage: client.lua URL SECONDS [CONC]")
secs = math.min(secs, 60)

lasync.run(function()
  local loop = lasync.get_running_loop()
  local n, t0 = 0, loop:time()
  local stop = t0 + secs
  local function worker()
    while loop:time() < stop do
      local res = get(url)
      assert(res.status == 200 and res.body == "Hello, World!", "unexpected response")
      n = n + 1
    end
  end
  local tasks = {}
  for i = 1, conc do tasks[i] = lasync.spawn(worker) end
  for _, t in ipairs(tasks) do t:await() end
  local dt = loop:time() - t0
  print(("rps=%.0f requests=%d seconds=%.2f conc=%d"):format(n / dt, n, dt, conc))
end)
