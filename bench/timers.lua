--- bench/timers.lua: how late a short sleep ends, the measurement that
-- spec/regress/2-precise-timers_spec.lua replaced by an ordering (a spec
-- must not time anything: a loaded machine breaks it). Prints the
-- shortest, median and 90th percentile of N sleeps of D seconds, in
-- milliseconds, and exits 1 when the median is half a clock tick late
-- (libevent's coarse clock ticks every 4 ms; a median 0.5 ms sleep took
-- 4.4 ms with it, 0.54 ms without), a bound generous for a loaded machine.
--
--   lua5.4 bench/timers.lua [N [D]]    (defaults 200 and 0.0005)
local HERE = arg[0]:match("^(.*)/[^/]*$") or "."
package.path = HERE .. "/?.lua;" .. package.path

local lasync = require "lasync"
local bench = require "benchlib"
local progress = require "progress"

local N = math.tointeger(tonumber(arg[1])) or 200
local D = tonumber(arg[2]) or 0.0005
local TICK = 0.004

local took = bench.in_loop(function(n)
  local t, p, every = {}, progress.new(n, "bench"), math.max(1, n // 10)
  for i = 1, n do
    if (i - 1) % every == 0 then p:set(i - 1, ("timers: sleep(%g)"):format(D)) end
    local t0 = lasync.time()
    lasync.sleep(D)
    t[i] = lasync.time() - t0
  end
  p:done()
  return t
end, N)

table.sort(took)
local median = bench.median(took)
print(("sleep(%g) x %d: shortest %.3f ms, median %.3f ms, 90th %.3f ms")
  :format(D, N, took[1] * 1e3, median * 1e3, took[math.ceil(N * 0.9)] * 1e3))
if median >= D + TICK / 2 then
  io.stderr:write(("timers: the median sleep is %.1f ms late: rounded to a clock tick?\n")
    :format((median - D) * 1e3))
  os.exit(1)
end
