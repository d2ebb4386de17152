--- The load of `make crash` (bench/crash_client.lua) and of
-- spec/serve_crash_spec.lua against bench/crash_echo.lua under `lasync
-- serve --workers N` (loaded with dofile: returns the module).
--
-- load.run(port, seconds, {long=, churn=, burst=}), in a task: `long`
-- long-lived connections (default 32) each send a line every 20 ms and
-- check its echo byte for byte; `churn` new connections a second (default
-- 100, started `burst` at a time, default 10) each read the greeting,
-- exchange one line and close. Every connection learns its worker's pid
-- from the greeting. A long-lived connection that is lost is reconnected.
-- Returns the results, judged once the load is over: a loss counts as its
-- worker's death when that worker is gone (killed, or an old generation
-- retired by SIGHUP, whose grace ends its connections), else as a
-- connection of a worker that kept running losing bytes.
local lasync = require "lasync"

local M = {}

local INTERVAL = 0.02
local TIMEOUT = 3           -- a connection that waits this long failed
local MAX_IN_FLIGHT = 500   -- churn connections at once, at most

-- A short name for why a connection failed.
local function kind_of(e)
  if type(e) == "table" and e.code then return e.code end
  if lasync.TimeoutError:is(e) then return "timeout" end
  return (tostring(e):gsub("%s+", "_"))
end

-- Whether a pid is gone (no process, or a zombie not reaped yet).
local function gone(pid)
  local f = io.open(("/proc/%d/stat"):format(pid))
  if not f then return true end
  local state = f:read("a"):match("^%d+ %b() (%a)")
  f:close()
  return state == "Z"
end

-- Connects and reads the greeting: reader, writer, the worker's pid.
local function connect(r)
  return lasync.wait_for(function()
    local rd, wr = lasync.open_connection("127.0.0.1", r.port)
    local pid = tonumber(rd:readline():match("^(%d+)\n$"))
    if not pid then
      wr:close()
      error("eof", 0)
    end
    r.workers[pid] = (r.workers[pid] or 0) + 1
    return rd, wr, pid
  end, TIMEOUT)
end

-- One exchange: line out, the same line back, or an error.
local function exchange(r, rd, wr, line)
  wr:write(line)
  wr:drain()
  local back = rd:readline()
  if back == "" then error("eof", 0) end
  if back ~= line then
    r.corrupt = r.corrupt + 1
    error("corrupt", 0)
  end
end

-- A new connection: {start (seconds since the load began), ok, the
-- worker's pid if it greeted, why it failed}.
local function churn_one(r, seq)
  local c = {start = lasync.time() - r.t0}
  local ok, err = pcall(function()
    local rd, wr
    rd, wr, c.pid = connect(r)
    local _ <close> = setmetatable({}, {__close = function() wr:close() end})
    lasync.wait_for(function() exchange(r, rd, wr, ("c%d\n"):format(seq)) end, TIMEOUT)
  end)
  c.ok, c.kind = ok, not ok and kind_of(err) or nil
  r.churn[#r.churn + 1] = c
  r.in_flight = r.in_flight - 1
end

-- A long-lived connection: lines with its id and a counter, a payload
-- that changes with both, until the end; reconnects after a loss.
local function long_one(r, id, stop_at)
  local n = 0
  while lasync.time() < stop_at do
    local ok, rd, wr, pid = pcall(connect, r)
    if ok then
      r.long_connects = r.long_connects + 1
      local ok2, err = pcall(function()
        while lasync.time() < stop_at do
          n = n + 1
          exchange(r, rd, wr, ("L%d:%d:%s\n"):format(id, n, ("x"):rep((id * 7 + n) % 200)))
          r.msgs = r.msgs + 1
          lasync.sleep(INTERVAL)
        end
      end)
      wr:close()
      if not ok2 then r.lost[#r.lost + 1] = {pid = pid, kind = kind_of(err)} end
    end
    lasync.sleep(0.05)
  end
end

-- The longest stretch in which new connections were refused: from the
-- start of one that failed before a worker served it (one that a worker
-- served until it died was not refused) to the start of the next that
-- succeeded, or the end.
local function longest_gap(churn, stop)
  table.sort(churn, function(a, b) return a.start < b.start end)
  local worst, first = 0, nil
  for _, c in ipairs(churn) do
    if c.ok then
      if first then worst, first = math.max(worst, c.start - first), nil end
    elseif not c.dead then
      first = first or c.start
    end
  end
  if first then worst = math.max(worst, stop - first) end
  return worst
end

-- The judgement once the load is over: which losses were their dead
-- worker's, the counts, the longest refusal.
local function judge(r, seconds)
  r.lost_dead, r.lost_alive, r.failed, r.churn_dead = 0, 0, 0, 0
  for _, l in ipairs(r.lost) do
    l.dead = l.pid ~= nil and gone(l.pid)
    if l.dead then r.lost_dead = r.lost_dead + 1 else r.lost_alive = r.lost_alive + 1 end
  end
  for _, c in ipairs(r.churn) do
    if not c.ok then
      r.failed = r.failed + 1
      c.dead = c.pid ~= nil and gone(c.pid)
      if c.dead then r.churn_dead = r.churn_dead + 1 end
    end
  end
  r.attempts, r.gap = #r.churn, longest_gap(r.churn, seconds)
  return r
end

function M.run(port, seconds, opts)
  opts = opts or {}
  local churn, burst = opts.churn or 100, opts.burst or 10
  local r = {port = port, t0 = lasync.time(), churn = {}, in_flight = 0, msgs = 0,
    lost = {}, corrupt = 0, long_connects = 0, workers = {}}
  local stop_at = r.t0 + seconds
  local tasks = {}
  for id = 1, opts.long or 32 do tasks[#tasks + 1] = lasync.spawn(long_one, r, id, stop_at) end
  local seq, next_at = 0, r.t0
  while lasync.time() < stop_at do
    while next_at <= lasync.time() and r.in_flight < MAX_IN_FLIGHT do
      next_at = next_at + burst / churn
      for _ = 1, burst do
        seq, r.in_flight = seq + 1, r.in_flight + 1
        tasks[#tasks + 1] = lasync.spawn(churn_one, r, seq)
      end
    end
    lasync.sleep(math.max(0.001, next_at - lasync.time()))
  end
  for _, t in ipairs(tasks) do t:await() end
  return judge(r, seconds)
end

--- The report of results r: one `fail T KIND PID gone|-` line per new
-- connection that failed (T: seconds since the load began, when it
-- started), one `lost PID KIND gone|alive` per long-lived one lost, and the
-- summary line `summary key=value ...`.
function M.report(r)
  local out = {}
  for _, l in ipairs(r.lost) do
    out[#out + 1] = ("lost %s %s %s"):format(tostring(l.pid), l.kind, l.dead and "gone" or "alive")
  end
  for _, c in ipairs(r.churn) do
    if not c.ok then
      out[#out + 1] = ("fail %.3f %s %s %s"):format(c.start, c.kind, tostring(c.pid),
        c.dead and "gone" or "-")
    end
  end
  local spread = {}
  for pid, n in pairs(r.workers) do spread[#spread + 1] = ("%d:%d"):format(pid, n) end
  table.sort(spread)
  out[#out + 1] = ("summary attempts=%d ok=%d failed=%d churn_dead=%d gap=%.3f msgs=%d " ..
    "lost_dead=%d lost_alive=%d corrupt=%d long_connects=%d workers=%d spread=%s"):format(
    r.attempts, r.attempts - r.failed, r.failed, r.churn_dead, r.gap, r.msgs, r.lost_dead,
    r.lost_alive, r.corrupt, r.long_connects, #spread, table.concat(spread, ","))
  return table.concat(out, "\n")
end

return M
