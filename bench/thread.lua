--- bench/thread.lua: round trips of a trivial function through
-- lasync.to_thread, one call in flight and 64 in flight, beside Python's
-- asyncio.to_thread on asyncio and on uvloop (bench/thread_asyncio.py, in
-- child processes, in the same run), checked against the target: a
-- sequential round trip rate at least 3x uvloop's.
--
--   lua5.4 bench/thread.lua            (`make bench-thread` runs it)
--
-- Environment: N (calls per figure, default 20000), REPEAT (rounds,
-- default 3; each figure is the median), PYTHON (default /usr/bin/python3,
-- Debian's, the one with python3-uvloop). Timed on the wall clock: the
-- work is in other threads, which CPU time would count too.
local HERE = arg[0]:match("^(.*)/[^/]*$") or "."
package.path = HERE .. "/?.lua;" .. package.path

local lasync = require "lasync"
local bench = require "benchlib"

local N = math.tointeger(tonumber(os.getenv("N"))) or 20000
local REPEAT = math.tointeger(tonumber(os.getenv("REPEAT"))) or 3
local PYTHON = os.getenv("PYTHON") or "/usr/bin/python3"
local WIDTH = 64
local TARGET = 3

local function trivial(x) return x end

local function sequential(n)
  local t0 = lasync.time()
  for i = 1, n do assert(lasync.to_thread(trivial, i) == i) end
  return n / (lasync.time() - t0)
end

local function concurrent(n)
  local k, tasks = n // WIDTH, {}
  local t0 = lasync.time()
  for w = 1, WIDTH do
    tasks[w] = lasync.spawn(function()
      for i = 1, k do lasync.to_thread(trivial, i) end
    end)
  end
  for _, t in ipairs(tasks) do t:await() end
  return k * WIDTH / (lasync.time() - t0)
end

local function figure(fn)
  local rates = {}
  for r = 1, REPEAT do
    rates[r] = bench.in_loop(function()
      lasync.to_thread(trivial, 0)  -- the pool's threads exist
      return fn(N)
    end)
  end
  return bench.median(rates)
end

-- Python's figures: runtime -> figure -> calls/s (the median of REPEAT
-- runs), or nil when that runtime is missing.
local function python(runtime)
  local runs = {}
  for _ = 1, REPEAT do
    for _, line in ipairs(bench.lines_of(("%s %s %s %d"):format(PYTHON,
        bench.quote(HERE .. "/thread_asyncio.py"), runtime, N))) do
      local name, rate = line:match("^[^\t]*\t([^\t]*)\t(%d+)$")
      if name then
        runs[name] = runs[name] or {}
        table.insert(runs[name], tonumber(rate))
      end
    end
  end
  if next(runs) == nil then return nil end
  for name, list in pairs(runs) do runs[name] = bench.median(list) end
  return runs
end

local rows = {
  {"sequential", "round trip, one call in flight", sequential},
  {WIDTH .. " in flight", WIDTH .. " tasks calling at once", concurrent},
}
local py = {asyncio = python("asyncio"), uvloop = python("uvloop")}

local function cell(t, name)
  return t and t[name] and ("%.0f"):format(t[name]) or "n/a"
end

print(("to_thread of a trivial function: calls/s, N = %d, median of %d")
      :format(N, REPEAT))
print("| figure | lasync | asyncio | uvloop | lasync / uvloop |")
print("|---|---:|---:|---:|---:|")
local ok = true
for _, row in ipairs(rows) do
  local rate = figure(row[3])
  local uv = py.uvloop and py.uvloop[row[1]]
  local ratio = uv and ("%.1fx"):format(rate / uv) or "n/a"
  print(("| %s | %.0f | %s | %s | %s |"):format(row[2], rate,
        cell(py.asyncio, row[1]), cell(py.uvloop, row[1]), ratio))
  if row[1] == "sequential" and uv then ok = rate / uv >= TARGET end
end
print(("target: sequential round trip >= %dx uvloop's: %s"):format(TARGET,
      py.uvloop and (ok and "met" or "NOT met") or "n/a (no uvloop)"))
