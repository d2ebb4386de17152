--- The load client of bench/c10k.sh: N echo connections from one source
-- address, opened with a bounded number in flight, each then sending a
-- message every INTERVAL seconds for DURATION seconds (0: none, the
-- connections stay idle), every reply checked byte for byte.
--
--   lasync run bench/c10k_client.lua PORT CONNS SRC INTERVAL DURATION [hold]
--
-- A connection counts as established once its first message came back: the
-- server accepted it (the kernel completes a handshake before that, in the
-- listen backlog, which pacing keeps short: serve listens with a backlog of
-- 100). The connections' messages are spread evenly over each interval
-- (connection i sends at i/CONNS of it), from absolute deadlines so that
-- a late one does not shift the next. With `hold` the connections stay
-- open after the exchange until SIGUSR2, so that bench/c10k.sh can measure
-- the server meanwhile. Lines on stdout, for the script to read:
--   held conns=N connect_s=S
--   result msgs=N p50_ms=X p99_ms=X max_ms=X errors=N [KIND=N ...]
--   closed
local lasync = require "lasync"

local port, conns, src = tonumber(arg[1]), tonumber(arg[2]), arg[3]
local interval, duration, hold = tonumber(arg[4]), tonumber(arg[5]), arg[6] == "hold"
if not (port and conns and src and interval and duration) then
  io.stderr:write("usage: c10k_client.lua PORT CONNS SRC INTERVAL DURATION [hold]\n")
  os.exit(2)
end
local INFLIGHT = 64    -- connects not yet answered; below serve's backlog of 100
local REPLY_S = 10     -- a reply later than this is an error ("timeout")
local SIZE = 64        -- bytes per message

local errors, latencies = {}, {}
local function fail(kind) errors[kind] = (errors[kind] or 0) + 1 end

-- The kind of an error: its code (ECONNRESET, ...) or class name.
local function kind_of(err)
  if lasync.TimeoutError:is(err) then return "timeout" end
  if lasync.IncompleteReadError:is(err) then return "eof" end
  if type(err) == "table" and err.code then return err.code end
  return (tostring(err):match("^(%w+):") or "other")
end

local function message(i, seq)
  local head = ("%d %d "):format(i, seq)
  return head .. ("x"):rep(SIZE - #head - 1) .. "\n"
end

-- One round trip; returns its latency in seconds, or nil after counting
-- the failure.
local function exchange(r, w, msg)
  local t0 = lasync.time()
  local ok, reply = pcall(lasync.timeout, REPLY_S, function()
    w:write(msg)
    return r:readexactly(#msg)
  end)
  if not ok then return fail(kind_of(reply)) end
  if reply ~= msg then return fail("corrupt") end
  return lasync.time() - t0
end

local slots, start, release = lasync.Semaphore(INFLIGHT), lasync.Event(), lasync.Event()
local held, live, t_start = 0, {}, nil
local settled, all_settled = 0, lasync.Event()  -- connections held or failed
local ended, all_ended = 0, lasync.Event()      -- connections done exchanging

local function count(n, total, event)
  if n == total then event:set() end
  return n
end

local function open(i)
  slots:acquire()
  local ok, r, w = pcall(lasync.open_connection, "127.0.0.1", port, {local_addr = {src, 0}})
  if not ok then slots:release(); return fail(kind_of(r)) end
  local first = exchange(r, w, message(i, 0))
  slots:release()
  if not first then w:close(); return end
  return r, w
end

-- Every message of connection i after the start; false after an error.
local function exchanges(i, r, w)
  local at = t_start + interval * (i - 1) / conns
  for seq = 1, math.floor(duration / interval + 0.5) do
    lasync.sleep(math.max(0, at - lasync.time()))
    local dt = exchange(r, w, message(i, seq))
    if not dt then return false end
    latencies[#latencies + 1] = dt
    at = at + interval
  end
  return true
end

local function run(i)
  local r, w = open(i)
  if r then live[i] = w; held = held + 1 end
  settled = count(settled + 1, conns, all_settled)
  if r then
    start:wait()
    if not exchanges(i, r, w) then live[i] = nil; w:close() end
  end
  ended = count(ended + 1, conns, all_ended)
end

local function percentile(sorted, p)
  if #sorted == 0 then return 0 end
  return sorted[math.max(1, math.ceil(#sorted * p))]
end

local function report()
  table.sort(latencies)
  local n, kinds = 0, {}
  for k, c in pairs(errors) do n = n + c; kinds[#kinds + 1] = ("%s=%d"):format(k, c) end
  table.sort(kinds)
  print(("result msgs=%d p50_ms=%.3f p99_ms=%.3f max_ms=%.3f errors=%d %s"):format(
    #latencies, 1e3 * percentile(latencies, 0.5), 1e3 * percentile(latencies, 0.99),
    1e3 * (latencies[#latencies] or 0), n, table.concat(kinds, " ")))
end

lasync.get_running_loop():add_signal_handler("SIGUSR2", function() release:set() end)
io.stdout:setvbuf("line")
local t0 = lasync.time()
for i = 1, conns do lasync.spawn(run, i) end
all_settled:wait()
print(("held conns=%d connect_s=%.1f"):format(held, lasync.time() - t0))
t_start = lasync.time() + 0.1
start:set()
all_ended:wait()
report()
if hold then release:wait() end
for _, w in pairs(live) do w:close() end
print("closed")
