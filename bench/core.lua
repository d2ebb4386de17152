--- bench/core.lua: the hot paths of the lasync core, each beside baselines
-- measured in the same run (plain Lua coroutines in this process, Python
-- asyncio and uvloop in child processes), checked against the targets.
--
--   lua5.4 bench/core.lua               the whole table (`make bench`)
--   lua5.4 bench/core.lua mem KIND N    one memory probe (KIND: task or coro);
--                                       prints Lua heap and RSS growth, bytes
--   lua5.4 bench/core.lua one KEY [N]   one figure (switch, handoff, spawn,
--                                       call_soon, timers, echo, raw_switch,
--                                       raw_spawn), e.g. under callgrind
--
-- Environment: REPEAT (rounds, default 5; every figure is the median of the
-- rounds), SCALE (multiplies the operation counts, default 1), SHARED_BENCH
-- (the peers' benchmark suite, a separate checkout; unset: its figures are
-- n/a), PYTHON (default
-- /usr/bin/python3, Debian's, which is the one with python3-uvloop).
local HERE = arg[0]:match("^(.*)/[^/]*$") or "."
package.path = HERE .. "/?.lua;" .. package.path

local lasync = require "lasync"
local bench = require "benchlib"

local clock, sleep, spawn = os.clock, lasync.sleep, lasync.spawn
local quote, lines_of, median, in_loop = bench.quote, bench.lines_of, bench.median, bench.in_loop
local create, resume, yield = coroutine.create, coroutine.resume, coroutine.yield

local REPEAT = math.tointeger(tonumber(os.getenv("REPEAT"))) or 5
local SCALE = tonumber(os.getenv("SCALE")) or 1
local BATCH = 1000       -- call_soon callbacks per loop iteration
local TIMERS = 100000    -- (e): fixed by the issue
local MEM_N = 100000     -- (f): sleeping tasks (and bare coroutines)
local PY_N = 100000      -- iterations per asyncio_micro.py figure

local SHARED = os.getenv("SHARED_BENCH") or ""
local PYTHON = os.getenv("PYTHON") or "/usr/bin/python3"

-- --------------------------------------------- lasync measurements -------
-- Each returns CPU seconds per operation, timed inside the main task.

--- (a) Two tasks giving way to each other with sleep(0): 2n switches.
local function switch(n)
  local function spin() for _ = 1, n do sleep(0) end end
  local t0 = clock()
  local a, b = spawn(spin), spawn(spin)
  a:await(); b:await()
  return (clock() - t0) / (2 * n)
end

--- (b) Ping-pong over Futures, as asyncio_micro.py does: each handoff makes
-- a Future, resolves the one the other task awaits, and awaits its own.
local function handoff(n)
  local Future = lasync.Future
  local fa, fb = Future(), Future()
  local function ping()
    for _ = 1, n do fa:await(); fa = Future(); fb:set_result(true) end
  end
  local function pong()
    for _ = 1, n do fa:set_result(true); fb:await(); fb = Future() end
  end
  local t0 = clock()
  local a, b = spawn(ping), spawn(pong)
  a:await(); b:await()
  return (clock() - t0) / (2 * n)
end

--- (c) spawn a task that does nothing and await it.
local function spawn_await(n)
  local function noop() end
  local t0 = clock()
  for _ = 1, n do spawn(noop):await() end
  return (clock() - t0) / n
end

--- (d) call_soon of a trivial callback, BATCH per loop iteration (the
-- main task queues after each batch, so sleep(0) returns once it ran).
local function call_soon(n)
  local loop, done = lasync.get_running_loop(), 0
  local function cb() done = done + 1 end
  local t0 = clock()
  for _ = 1, n // BATCH do
    for _ = 1, BATCH do loop:call_soon(cb) end
    sleep(0)
  end
  local dt = clock() - t0
  assert(done == n // BATCH * BATCH, "callbacks lost")
  return dt / done
end

--- (e) n call_later timers with delays spread over 0..10 ms, scheduled and
-- fired (CPU time: the loop sleeps in epoll until each deadline).
local function timers(n)
  local loop, fired, all = lasync.get_running_loop(), 0, lasync.Future()
  local delays = {}
  math.randomseed(1)
  for i = 1, n do delays[i] = math.random() * 0.01 end
  local function cb()
    fired = fired + 1
    if fired == n then all:set_result(true) end
  end
  local t0 = clock()
  for i = 1, n do loop:call_later(delays[i], cb) end
  all:await()
  return (clock() - t0) / n
end

--- (g) An echo of 1 KiB messages over loopback TCP, client and server in
-- this process: per message the client writes it and reads it back, the
-- server's handler (examples/echo.lua) reads, writes and drains it.
local function echo(n)
  local msg = ("x"):rep(1024)
  local handler = dofile(HERE .. "/../examples/echo.lua")
  local server = lasync.start_server(handler, "127.0.0.1", 0)
  local _, port = server:sockname()
  local r, w = lasync.open_connection("127.0.0.1", port)
  local t0 = clock()
  for _ = 1, n do
    w:write(msg)
    w:drain()
    r:readexactly(1024)
  end
  local dt = clock() - t0
  w:close()
  server:close()
  server:wait_closed()
  return dt / n
end

-- -------------------------------------------- raw Lua baselines ----------

--- One resume+yield pair of a plain coroutine (micro/coro.lua).
local function raw_switch(n)
  local co = create(function() while true do yield() end end)
  collectgarbage(); collectgarbage()
  local t0 = clock()
  for _ = 1, n do resume(co) end
  return (clock() - t0) / n
end

--- coroutine.create + resume to completion (micro/coro.lua).
local function raw_spawn(n)
  local function body() end
  collectgarbage(); collectgarbage()
  local t0 = clock()
  for _ = 1, n do resume(create(body)) end
  return (clock() - t0) / n
end

-- ------------------------------------------------ memory probe -----------

local function page_size()
  local out = lines_of("getconf PAGESIZE")
  return tonumber(out[1]) or 4096
end

local function resident_pages()
  local f = assert(io.open("/proc/self/statm"))
  local _, resident = f:read("n", "n")
  f:close()
  return resident
end

--- Start n tasks (or bare coroutines) that stay suspended; both are kept in
-- a list so that its cost cancels out in the difference.
local function start_all(kind, n, list)
  local started = 0
  if kind == "task" then
    local function body() started = started + 1; sleep(60) end
    for i = 1, n do list[i] = spawn(body) end
    sleep(0)  -- every task takes its first step and goes to sleep
  else
    local function body() started = started + 1; yield() end
    for i = 1, n do
      local co = create(body)
      resume(co)
      list[i] = co
    end
  end
  assert(started == n, "not every task started")
end

--- Child process: print the Lua heap and RSS growth (bytes) for n
-- suspended tasks or coroutines, then exit without cleaning up.
local function memory_probe(kind, n)
  assert(kind == "task" or kind == "coro", "mem: kind is task or coro")
  lasync.run(function()
    local list = {}
    collectgarbage(); collectgarbage()
    local heap0, rss0 = collectgarbage("count"), resident_pages()
    start_all(kind, n, list)
    collectgarbage(); collectgarbage()
    local heap1, rss1 = collectgarbage("count"), resident_pages()
    print(("%.0f\t%.0f"):format((heap1 - heap0) * 1024,
                                (rss1 - rss0) * page_size()))
    io.stdout:flush()
    os.exit(0)  -- 100,000 sleeping tasks need no orderly shutdown
  end)
end

-- ------------------------------------------------ the rounds -------------

local samples = {}  -- key -> list of values (ns per op, or bytes)

local function add(key, value)
  samples[key] = samples[key] or {}
  table.insert(samples[key], value)
end

local LASYNC = {  -- key, operations per round, function, runs in a loop
  {"switch", 500000, switch, true},
  {"handoff", 500000, handoff, true},
  {"spawn", 300000, spawn_await, true},
  {"call_soon", 1000000, call_soon, true},
  {"timers", TIMERS, timers, true},
  {"echo", 100000, echo, true},
  {"raw_switch", 3000000, raw_switch},
  {"raw_spawn", 1000000, raw_spawn},
}

local function round_lua(step)
  for _, b in ipairs(LASYNC) do
    local key, n, fn, needs_loop = b[1], b[2], b[3], b[4]
    step(key)
    if key ~= "timers" then n = math.max(BATCH, math.floor(n * SCALE)) end
    add(key, 1e9 * (needs_loop and in_loop(fn, n) or fn(n)))
  end
end

local function round_memory(step)
  step("memory probes")
  local base = quote(bench.interpreter()) .. " " .. quote(arg[0]) .. " mem "
  local per = {}
  for _, kind in ipairs {"task", "coro"} do
    local heap, rss = (lines_of(base .. kind .. " " .. MEM_N)[1] or "")
      :match("^(%d+)\t(%d+)$")
    if not heap then error("memory probe failed: " .. base .. kind) end
    per[kind] = {heap = heap / MEM_N, rss = rss / MEM_N}
  end
  add("mem_heap", per.task.heap - per.coro.heap)
  add("mem_rss", per.task.rss - per.coro.rss)
  add("task_rss", per.task.rss)
  add("coro_heap", per.coro.heap)
  add("coro_rss", per.coro.rss)
end

--- A Python baseline's figures: a rate (ops/s) is stored as ns per op, a
-- byte count as it is.
local function add_python(cmd, bytes)
  bench.python_figures(cmd, function(key, v) add(key, bytes and v or 1e9 / v) end)
end

--- What the Python baselines can use; why is set when Python itself is not.
local function python_available()
  local py, why = bench.python_available(PYTHON)
  py.micro = bench.readable(SHARED .. "/micro/asyncio_micro.py")
  return py, why
end

local function round_python(py, step)
  for _, rt in ipairs {"asyncio", "uvloop"} do
    if py[rt] then
      step("python " .. rt)
      local pre = quote(PYTHON) .. " "
      if py.micro then
        add_python(pre .. quote(SHARED .. "/micro/asyncio_micro.py") .. " "
                   .. rt .. " " .. PY_N)
      end
      add_python(pre .. quote(HERE .. "/asyncio_loop.py") .. " " .. rt .. " time")
      add_python(pre .. quote(HERE .. "/asyncio_loop.py") .. " " .. rt
                 .. " mem " .. MEM_N, true)
    end
  end
end

-- ------------------------------------------------ the report -------------

local med = {}  -- key -> median

--- "min-max" of the rounds of a figure, for a feel of the noise.
local function fmt_range(key)
  local t = samples[key]
  if not t then return "" end
  local lo, hi = math.min(table.unpack(t)), math.max(table.unpack(t))
  return lo == hi and "" or ("%.0f-%.0f"):format(lo, hi)
end

local function fmt_ns(key)
  local v = med[key]
  return v and ("%.1f"):format(v) or "n/a"
end

local function fmt_rate(key)
  local v = med[key]
  return v and bench.fmt_int(1e9 / v) or "n/a"
end

--- Baseline cost / lasync cost: > 1 means lasync is cheaper (for times,
-- that is lasync's rate / the baseline's rate).
local function ratio(lkey, bkey)
  if not (med[lkey] and med[bkey]) then return "n/a" end
  return ("%.2f"):format(med[bkey] / med[lkey])
end

local function P(rt, op) return "python " .. rt .. "|" .. op end

local SWITCH_PY = "sleep(0) task switch"
local HANDOFF_PY = "Future set_result+await handoff"
local TIMERS_PY = "call_later timers scheduled+fired"
local MEM_PY = "bytes per sleeping task"

-- Rows: id, operation, lasync key, unit, {baseline label, key, no ratio}...
local ROWS = {
  {"a", "task switch, sleep(0) between 2 tasks", "switch", "ns", {
    {"Lua resume+yield pair", "raw_switch"},
    {"uvloop sleep(0) switch", P("uvloop", SWITCH_PY)},
    {"asyncio sleep(0) switch", P("asyncio", SWITCH_PY)}}},
  {"b", "Future set_result+await handoff", "handoff", "ns", {
    {"Lua resume+yield pair", "raw_switch"},
    {"uvloop Future handoff", P("uvloop", HANDOFF_PY)},
    {"asyncio Future handoff", P("asyncio", HANDOFF_PY)}}},
  {"c", "spawn + await of a trivial task", "spawn", "ns", {
    {"Lua create+resume to completion", "raw_spawn"},
    {"uvloop create_task+await", P("uvloop", "create_task+await")},
    {"asyncio create_task+await", P("asyncio", "create_task+await")}}},
  {"d", "loop:call_soon callback", "call_soon", "ns", {
    {"uvloop call_soon", P("uvloop", "call_soon callback")},
    {"asyncio call_soon", P("asyncio", "call_soon callback")}}},
  {"e", "100,000 call_later timers (0-10 ms), per timer", "timers", "ns", {
    {"uvloop call_later", P("uvloop", TIMERS_PY)},
    {"asyncio call_later", P("asyncio", TIMERS_PY)}}},
  {"f", "sleeping task above a coroutine (RSS)", "mem_rss", "B", {
    {"bare coroutine, RSS (its own size)", "coro_rss", true}}},
  {"f", "sleeping task above a coroutine (Lua heap)", "mem_heap", "B", {
    {"bare coroutine, Lua heap", "coro_heap", true}}},
  {"f", "sleeping task, total (RSS)", "task_rss", "B", {
    {"uvloop task in sleep(60), RSS", P("uvloop", MEM_PY)},
    {"asyncio task in sleep(60), RSS", P("asyncio", MEM_PY)}}},
  {"g", "echo of a 1 KiB message over loopback TCP", "echo", "ns", {
    {"(kernel time included; no baseline)", "none", true}}},
}

local function fmt_value(key, unit)
  return unit == "B" and fmt_ns(key) .. " B" or fmt_ns(key)
end

local function row_cells(r)
  local id, op, key, unit, bases = r[1], r[2], r[3], r[4], r[5]
  local out = {}
  for i, b in ipairs(bases) do
    local first = i == 1
    out[#out + 1] = {
      first and id or "", first and op or "",
      first and fmt_value(key, unit) or "", first and fmt_range(key) or "",
      first and unit == "ns" and fmt_rate(key) or "",
      b[1], fmt_value(b[2], unit), b[3] and "" or ratio(key, b[2]),
    }
  end
  return out
end

-- Targets: id, text, value format, check() -> value or nil, pass.
local function at_most(key, limit)
  return function()
    local v = med[key]
    return v, v and v <= limit
  end
end

local function rate_ratio(key, base, min, strict)
  return function()
    if not (med[key] and med[base]) then return nil end
    local v = med[base] / med[key]
    if strict then return v, v > min end
    return v, v >= min
  end
end

local TARGETS = {
  {"a", "at most 150 ns per switch", "%.1f ns", at_most("switch", 150)},
  {"a", "rate >= 0.4x raw resume+yield rate", "%.2fx",
   rate_ratio("switch", "raw_switch", 0.4)},
  {"a", "rate > 5x uvloop sleep(0) switch", "%.2fx",
   rate_ratio("switch", P("uvloop", SWITCH_PY), 5, true)},
  {"b", "at most 150 ns per handoff", "%.1f ns", at_most("handoff", 150)},
  {"b", "rate >= 0.4x raw resume+yield rate", "%.2fx",
   rate_ratio("handoff", "raw_switch", 0.4)},
  {"b", "rate > 5x uvloop Future handoff", "%.2fx",
   rate_ratio("handoff", P("uvloop", HANDOFF_PY), 5, true)},
  {"c", "at most 300 ns per spawn+await", "%.1f ns", at_most("spawn", 300)},
  {"f", "at most 1 KiB per sleeping task above the coroutine (RSS)",
   "%.0f B", at_most("mem_rss", 1024)},
  {"f", "at most 1 KiB per sleeping task above the coroutine (Lua heap)",
   "%.0f B", at_most("mem_heap", 1024)},
}

local function print_targets()
  local rows = {}
  for _, t in ipairs(TARGETS) do
    local v, pass = t[4]()
    rows[#rows + 1] = {t[1], t[2], v and t[3]:format(v) or "n/a",
                       v == nil and "n/a" or pass and "PASS" or "MISS"}
  end
  bench.print_table("llrl", {"id", "target", "measured", "result"}, rows)
end

local function print_header(py, why)
  print(("# lasync core benchmark, %s"):format(os.date("%Y-%m-%d %H:%M")))
  print()
  local lines = bench.header_lines(HERE, PYTHON, py, why)
  print(lines[1])
  print(lines[2])
  print(("%s; SHARED_BENCH %s"):format(lines[3],
    py.micro and SHARED or (SHARED == "" and "unset" or SHARED .. " missing")
      .. ": asyncio_micro.py figures n/a"))
  print(("%d rounds, median of each figure; times are CPU time (os.clock, "
    .. "process_time), except asyncio_micro.py figures (perf_counter)"):format(REPEAT))
  print()
end

local function total_ms(key)
  return med[key] and ("%.1f"):format(med[key] * TIMERS / 1e6) or "n/a"
end

local function report(py, why)
  for k, v in pairs(samples) do med[k] = median(v) end
  print_header(py, why)
  local rows = {}
  for _, r in ipairs(ROWS) do
    for _, cells in ipairs(row_cells(r)) do rows[#rows + 1] = cells end
  end
  bench.print_table("llrrrlrr", {"id", "operation", "lasync ns/op", "min-max",
               "ops/s", "baseline", "baseline ns/op", "ratio"}, rows)
  print()
  print("ratio = baseline cost / lasync cost (> 1: lasync cheaper; for times "
        .. "= lasync rate / baseline rate)")
  print(("(e) total CPU for 100,000 timers: lasync %s ms, uvloop %s ms, "
    .. "asyncio %s ms"):format(total_ms("timers"),
    total_ms(P("uvloop", TIMERS_PY)), total_ms(P("asyncio", TIMERS_PY))))
  print()
  print_targets()
end

-- The default count and the per-op timer of a figure, for `one KEY N`.
local function figure(key)
  for _, b in ipairs(LASYNC) do
    if b[1] == key then
      return b[2], function(n) return b[4] and in_loop(b[3], n) or b[3](n) end
    end
  end
end

local function main()
  if arg[1] == "mem" then
    return memory_probe(arg[2], math.tointeger(tonumber(arg[3])) or MEM_N)
  elseif arg[1] == "one" then
    return bench.run_one(arg[2], math.tointeger(tonumber(arg[3])), figure)
  end
  local py, why = python_available()
  bench.rounds("core", REPEAT, #LASYNC + 1 + bench.python_runtimes(py), function(step)
    round_lua(step)
    round_memory(step)
    round_python(py, step)
  end)
  report(py, why)
end

main()
