--- bench/sync.lua: queues and synchronisation primitives (lasync.sync,
-- lasync.queues) beside Python asyncio and uvloop doing the same
-- (bench/sync_asyncio.py, in child processes, in the same run), checked
-- against the target: a rate at least 5x uvloop's.
--
--   lua5.4 bench/sync.lua              the table (`make bench` runs it)
--   lua5.4 bench/sync.lua one KEY [N]  one figure (queue1, queue0, lock,
--                                      event), e.g. under callgrind
--
-- Environment: REPEAT (rounds, default 5; every figure is the median of the
-- rounds), SCALE (multiplies the operation counts, default 1), PYTHON
-- (default /usr/bin/python3, Debian's, which is the one with python3-uvloop).
local HERE = arg[0]:match("^(.*)/[^/]*$") or "."
package.path = HERE .. "/?.lua;" .. package.path

local lasync = require "lasync"
local bench = require "benchlib"

local clock, sleep, spawn = os.clock, lasync.sleep, lasync.spawn

local REPEAT = math.tointeger(tonumber(os.getenv("REPEAT"))) or 5
local SCALE = tonumber(os.getenv("SCALE")) or 1
local PYTHON = os.getenv("PYTHON") or "/usr/bin/python3"
local PY_N = 100000  -- sync_asyncio.py's N (its unbounded queue does 5 N)
local TARGET = 5     -- times uvloop's rate

-- ------------------------------------------------------- the figures -----
-- Each runs as the main task of a fresh loop and returns CPU seconds per
-- operation; sync_asyncio.py does the same in Python.

local function both(f, g)
  local t0 = clock()
  local a, b = spawn(f), spawn(g)
  a:await(); b:await()
  return clock() - t0
end

--- A producer task puts n items into a Queue(maxsize), a consumer task
-- gets them: per item.
local function queue_run(maxsize, n)
  local q = lasync.Queue(maxsize)
  local got = 0
  local dt = both(function() for i = 1, n do q:put(i) end end,
                  function() for _ = 1, n do got = got + q:get() end end)
  assert(got == n * (n + 1) // 2, "items lost")
  return dt / n
end

local function queue1(n) return queue_run(1, n) end
local function queue0(n) return queue_run(0, n) end

--- Two tasks each take a Lock n times and give way (sleep(0)) while they
-- hold it, so every acquire but the first waits for the other: per acquire.
local function lock(n)
  local l = lasync.Lock()
  local function worker()
    for _ = 1, n do l:acquire(); sleep(0); l:release() end
  end
  return both(worker, worker) / (2 * n)
end

--- Two tasks wake each other through two Events: per wake-up.
local function event(n)
  local ping, pong = lasync.Event(), lasync.Event()
  return both(function()
    for _ = 1, n do ping:wait(); ping:clear(); pong:set() end
  end, function()
    for _ = 1, n do ping:set(); pong:wait(); pong:clear() end
  end) / (2 * n)
end

-- key, what, operations per round, function, sync_asyncio.py operation
local FIGURES = {
  {"queue1", "Queue(maxsize=1), producer -> consumer, per item", 200000, queue1,
   "Queue(maxsize=1) put+get"},
  {"queue0", "unbounded Queue, producer -> consumer, per item", 1000000, queue0,
   "Queue(maxsize=0) put+get"},
  {"lock", "Lock handoff between 2 tasks, per acquire", 200000, lock,
   "Lock handoff"},
  {"event", "Event set -> wait wake-up, per wake-up", 200000, event,
   "Event set->wait wake-up"},
}

-- ------------------------------------------------------- the rounds ------

local samples = {}  -- key -> list of ns per op

local function add(key, value)
  samples[key] = samples[key] or {}
  table.insert(samples[key], value)
end

local function round_lua(step)
  for _, f in ipairs(FIGURES) do
    step(f[1])
    add(f[1], 1e9 * bench.in_loop(f[4], math.max(1000, math.floor(f[3] * SCALE))))
  end
end

local function round_python(py, step)
  for _, rt in ipairs {"asyncio", "uvloop"} do
    if py[rt] then
      step("python " .. rt)
      bench.python_figures(("%s %s %s %d"):format(bench.quote(PYTHON),
        bench.quote(HERE .. "/sync_asyncio.py"), rt, math.floor(PY_N * SCALE)),
        function(key, rate) add(key, 1e9 / rate) end)
    end
  end
end

-- ------------------------------------------------------- the report ------

local med = {}

local function fmt_ns(key)
  return med[key] and ("%.1f"):format(med[key]) or "n/a"
end

local function range(key)
  local t = samples[key]
  if not t or #t < 2 then return "" end
  return ("%.0f-%.0f"):format(math.min(table.unpack(t)), math.max(table.unpack(t)))
end

-- uvloop's cost / lasync's: how many times uvloop's rate lasync's is.
local function times(key, base)
  return med[key] and med[base] and med[base] / med[key]
end

local function report(py, why)
  for k, v in pairs(samples) do med[k] = bench.median(v) end
  print(("# lasync sync primitives and queues benchmark, %s"):format(os.date("%Y-%m-%d %H:%M")))
  print()
  for _, line in ipairs(bench.header_lines(HERE, PYTHON, py, why)) do print(line) end
  print(("%d rounds, median of each figure; CPU time (os.clock, process_time)")
        :format(REPEAT))
  print()
  local rows = {}
  for _, f in ipairs(FIGURES) do
    local key, uv, aio = f[1], "python uvloop|" .. f[5], "python asyncio|" .. f[5]
    local x = times(key, uv)
    rows[#rows + 1] = {
      f[2], fmt_ns(key), range(key),
      med[key] and bench.fmt_int(1e9 / med[key]) or "n/a",
      fmt_ns(uv), fmt_ns(aio), x and ("%.2fx"):format(x) or "n/a",
      x == nil and "n/a" or x >= TARGET and "PASS" or "MISS",
    }
  end
  bench.print_table("lrrrrrrl", {"figure", "lasync ns/op", "min-max", "ops/s",
    "uvloop ns/op", "asyncio ns/op", "vs uvloop", ("target >= %dx"):format(TARGET)}, rows)
end

-- The default count and the per-op timer of a figure, for `one KEY N`.
local function figure(key)
  for _, f in ipairs(FIGURES) do
    if f[1] == key then
      return f[3], function(n) return bench.in_loop(f[4], n) end
    end
  end
end

local function main()
  if arg[1] == "one" then
    return bench.run_one(arg[2], math.tointeger(tonumber(arg[3])), figure)
  end
  local py, why = bench.python_available(PYTHON)
  bench.rounds("sync", REPEAT, #FIGURES + bench.python_runtimes(py), function(step)
    round_lua(step)
    round_python(py, step)
  end)
  report(py, why)
end

main()
