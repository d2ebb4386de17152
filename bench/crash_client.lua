--- The load of `make crash` (bench/crash.sh) and spec/serve_crash_spec.lua,
-- against bench/crash_echo.lua under `lasync serve --workers N`:
--   lua5.4 bench/crash_client.lua PORT SECONDS [LONG [CHURN [BURST]]]
-- LONG long-lived connections (default 32) each send a line every 20 ms
-- and check its echo byte for byte; CHURN new connections a second
-- (default 100, started BURST at a time, default 10) each read the
-- greeting, exchange one line and close.
-- Every connection learns its worker's pid from the greeting. A long-lived
-- connection that is lost is reconnected; at the end a loss counts as the
-- worker's death (`lost_dead`) when that worker is gone (killed, or an old
-- generation retired by SIGHUP, whose grace ends its connections), else as
-- `lost_alive`: a connection of a worker that kept running lost bytes.
-- Prints one `fail T KIND PID gone|-` line per churn connection that
-- failed (T: seconds since it started; PID, if it got the greeting, and
-- whether that worker is gone: `churn_dead` counts those), `lost PID KIND
-- gone|alive` per long-lived one lost, then a summary line `key=value
-- ...`; exit status 0 (the caller judges).
local lasync = require "lasync"

local port = assert(tonumber(arg[1]), "PORT expected")
local seconds = assert(tonumber(arg[2]), "SECONDS expected")
local nlong = tonumber(arg[3]) or 32
local churn = tonumber(arg[4]) or 100
local burst = tonumber(arg[5]) or 10
local INTERVAL = 0.02
local CONNECT_TIMEOUT = 3     -- a connection that waits this long failed
local MAX_IN_FLIGHT = 500     -- churn connections at once, at most

local r = {attempts = 0, ok = 0, fails = {}, msgs = 0, lost = {}, corrupt = 0,
  long_connects = 0, workers = {}}
local t0

-- A short name for why a connection failed.
local function kind_of(e)
  if type(e) == "table" and e.code then return e.code end
  if lasync.TimeoutError:is(e) then return "timeout" end
  if lasync.IncompleteReadError:is(e) then return "eof" end
  return (tostring(e):gsub("%s+", "_"))
end

-- Connects and reads the greeting: reader, writer, the worker's pid.
local function connect()
  return lasync.wait_for(function()
    local rd, wr = lasync.open_connection("127.0.0.1", port)
    local line = rd:readline()
    local pid = tonumber(line:match("^(%d+)\n$"))
    if not pid then
      wr:close()
      error("eof", 0)
    end
    r.workers[pid] = (r.workers[pid] or 0) + 1
    return rd, wr, pid
  end, CONNECT_TIMEOUT)
end

-- One exchange: line out, the same line back, or an error.
local function exchange(rd, wr, line)
  wr:write(line)
  wr:drain()
  local back = rd:readline()
  if back == "" then error("eof", 0) end
  if back ~= line then
    r.corrupt = r.corrupt + 1
    error("corrupt", 0)
  end
end

local function churn_one(seq)
  local start = lasync.time() - t0
  r.attempts = r.attempts + 1
  local pid
  local ok, err = pcall(function()
    local rd, wr
    rd, wr, pid = connect()
    local _ <close> = setmetatable({}, {__close = function() wr:close() end})
    lasync.wait_for(function() exchange(rd, wr, ("c%d\n"):format(seq)) end, CONNECT_TIMEOUT)
  end)
  if ok then
    r.ok = r.ok + 1
  else
    r.fails[#r.fails + 1] = {start, kind_of(err), pid}
  end
  r.in_flight = r.in_flight - 1
  r.starts[#r.starts + 1] = {start, ok, pid}
end

-- A long-lived connection: lines with its id and a counter, a payload
-- that changes with both, until the end; reconnects after a loss.
local function long_one(id, stop_at)
  local n = 0
  while lasync.time() < stop_at do
    local ok, rd, wr, pid = pcall(connect)
    if ok then
      r.long_connects = r.long_connects + 1
      local ok2, err = pcall(function()
        while lasync.time() < stop_at do
          n = n + 1
          exchange(rd, wr, ("L%d:%d:%s\n"):format(id, n, ("x"):rep((id * 7 + n) % 200)))
          r.msgs = r.msgs + 1
          lasync.sleep(INTERVAL)
        end
      end)
      wr:close()
      if not ok2 then r.lost[#r.lost + 1] = {pid, kind_of(err)} end
    end
    lasync.sleep(0.05)
  end
end

-- Whether a pid is gone (no process, or a zombie not reaped yet).
local function gone(pid)
  local f = io.open(("/proc/%d/stat"):format(pid))
  if not f then return true end
  local state = f:read("a"):match("^%d+ %b() (%a)")
  f:close()
  return state == "Z"
end

-- The longest stretch in which new connections failed: from the start of
-- a failed one to the start of the next one that succeeded (or the end).
-- One that a worker served until it died was not refused: left out.
local function longest_gap(starts, stop)
  table.sort(starts, function(a, b) return a[1] < b[1] end)
  local worst, first_fail = 0, nil
  for _, s in ipairs(starts) do
    if not s[2] and not (s[3] and gone(s[3])) then first_fail = first_fail or s[1]
    elseif s[2] and first_fail then
      worst, first_fail = math.max(worst, s[1] - first_fail), nil
    end
  end
  if first_fail then worst = math.max(worst, stop - first_fail) end
  return worst
end

lasync.run(function()
  t0 = lasync.time()
  r.in_flight, r.starts = 0, {}
  local stop_at = t0 + seconds
  local tasks = {}
  for id = 1, nlong do tasks[#tasks + 1] = lasync.spawn(long_one, id, stop_at) end
  local seq, next_at = 0, t0
  while lasync.time() < stop_at do
    while next_at <= lasync.time() and r.in_flight < MAX_IN_FLIGHT do
      next_at = next_at + burst / churn
      for _ = 1, burst do
        seq, r.in_flight = seq + 1, r.in_flight + 1
        tasks[#tasks + 1] = lasync.spawn(churn_one, seq)
      end
    end
    lasync.sleep(math.max(0.001, next_at - lasync.time()))
  end
  for _, t in ipairs(tasks) do t:await() end
  local dead, alive = 0, 0
  for _, l in ipairs(r.lost) do
    local is_gone = l[1] and gone(l[1])
    if is_gone then dead = dead + 1 else alive = alive + 1 end
    print(("lost %s %s %s"):format(tostring(l[1]), l[2], is_gone and "gone" or "alive"))
  end
  local churn_dead = 0
  for _, f in ipairs(r.fails) do
    local is_gone = f[3] and gone(f[3])
    if is_gone then churn_dead = churn_dead + 1 end
    print(("fail %.3f %s %s %s"):format(f[1], f[2], tostring(f[3]), is_gone and "gone" or "-"))
  end
  local spread = {}
  for pid, c in pairs(r.workers) do spread[#spread + 1] = ("%d:%d"):format(pid, c) end
  table.sort(spread)
  print(("summary attempts=%d ok=%d failed=%d gap=%.3f msgs=%d lost_dead=%d lost_alive=%d " ..
    "corrupt=%d long_connects=%d churn_dead=%d workers=%d spread=%s"):format(r.attempts, r.ok, #r.fails,
    longest_gap(r.starts, seconds), r.msgs, dead, alive, r.corrupt, r.long_connects,
    churn_dead, #spread, table.concat(spread, ",")))
end)
