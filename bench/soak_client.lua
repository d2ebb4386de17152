--- The load client of `make soak` (bench/soak.sh), run by `lasync run`:
--   soak_client.lua MASTER_PID SECONDS
-- with SOAK_ECHO_PORT, SOAK_TLS_PORT, SOAK_HTTP_PORT, SOAK_CA,
-- SOAK_READ_TIMEOUT, SOAK_WRITE_TIMEOUT and SOAK_HTTP_TIMEOUT in the
-- environment (the server's limits: the slow peers stay within them, the
-- over-slow ones must be closed by them). Against bench/soak_server.lua
-- under `lasync serve --workers N` it mixes, for SECONDS: steady traffic
-- on long-lived connections of each protocol (echo, TLS echo, HTTP
-- keep-alive, WebSocket), churn (connect, one exchange, close), peers that
-- reset (SO_LINGER 0) mid-write and mid-read, half-closes, slow writers and
-- readers, and over-slow peers the server must close. Every byte that
-- comes back is compared with what was sent. Every 10 s it prints a sample
-- of the workers (RSS, descriptors) and of the counts; at the end a
-- verdict on RSS, corruption and lost requests; exit status 1 on a failure.
local lasync = require "lasync"
local http = require "lasync.http"
local socket = require "lasync.socket"
local ssl = require "lasync.socket.ssl"

local HOST = "127.0.0.1"
local MASTER, SECONDS = tonumber(arg[1]), tonumber(arg[2])
local function env(name) return tonumber(os.getenv(name)) or error(name .. " is not set", 0) end
local ECHO, TLS, HTTP = env("SOAK_ECHO_PORT"), env("SOAK_TLS_PORT"), env("SOAK_HTTP_PORT")
local READ_TIMEOUT, WRITE_TIMEOUT = env("SOAK_READ_TIMEOUT"), env("SOAK_WRITE_TIMEOUT")
local HTTP_TIMEOUT = env("SOAK_HTTP_TIMEOUT")
local URL = ("http://%s:%d"):format(HOST, HTTP)
local SSL = lasync.ssl_context {cafile = os.getenv("SOAK_CA")}
-- RSS is judged by the medians of windows of RSS_WINDOW seconds (a
-- minute; a quarter of a shorter run) of readings after a full
-- collection, the first window after one of warm-up: see rss_verdict.
local SAMPLE_EVERY, RSS_WINDOW = 10, math.min(60, SECONDS // 4)
-- Each exchange must end within this, or it is counted lost.
local EXCHANGE_TIMEOUT = 15

-- ------------------------------------------------------------- counts --

local done = {}      -- kind -> exchanges verified (or closings seen as expected)
local failed = {}    -- "kind: what" -> count: lost requests, corruption, surprises
local resets = 0     -- connections the client reset itself
local stopping = false

local function count(kind) done[kind] = (done[kind] or 0) + 1 end
local function fail(kind, what)
  local k = kind .. ": " .. what
  failed[k] = (failed[k] or 0) + 1
end

-- An error's class and message, short: "ConnectionResetError".
local function class_of(e)
  return (tostring(type(e) == "table" and e.message and tostring(e) or e):match("^([%w_]+Error)")
    or tostring(e):sub(1, 60))
end

-- ------------------------------------------------------------ payloads --

-- A pool of pseudo-random bytes (a fixed seed: a run can be replayed);
-- messages are slices of it behind a sequence number, so a byte out of
-- place or a message of another exchange does not compare equal.
math.randomseed(16)
local POOL do
  local t = {}
  for i = 1, 1 << 20 do t[i] = string.char(math.random(0, 255)) end
  POOL = table.concat(t)
end
local seq = 0

-- A message of about n bytes.
local function message(n)
  seq = seq + 1
  local head = ("#%d:"):format(seq)
  local len = math.max(n - #head, 0)
  local from = math.random(1, #POOL - len + 1)
  return head .. POOL:sub(from, from + len - 1)
end

-- Mostly small, sometimes up to 256 KiB.
local function any_size()
  if math.random() < 0.05 then return math.random(16384, 262144) end
  return math.random(16, 2048)
end

-- The body of GET /big?n=N (soak_server.lua's).
local function big_body(n) return ("0123456789"):rep(n // 10 + 1):sub(1, n) end

-- ---------------------------------------------------------- exchanges --

-- One echo round trip on a stream: the message comes back whole.
local function echo_once(kind, reader, writer, msg)
  writer:write(msg)  -- buffered; the echo is read while it goes out
  local got = reader:readexactly(#msg)
  writer:drain()
  if got ~= msg then return fail(kind, "corrupted echo") end
  count(kind)
end

local function open_echo(tls)
  if tls then return lasync.open_connection(HOST, TLS, {ssl = SSL}) end
  return lasync.open_connection(HOST, ECHO)
end

local function http_once(kind, opts_headers)
  local msg = message(any_size())
  local res = http.request("POST", URL .. "/echo", {body = msg, timeout = EXCHANGE_TIMEOUT,
    headers = opts_headers})
  if res.status ~= 200 then return fail(kind, "status " .. res.status) end
  if res.body ~= msg then return fail(kind, "corrupted body") end
  count(kind)
end

local function ws_once(kind, ws)
  local msg = message(any_size())
  ws:send(msg, "binary")
  local got, how = ws:receive()
  if got == nil then error(("WebSocket closed (%s)"):format(how), 0) end
  if got ~= msg or how ~= "binary" then return fail(kind, "corrupted message") end
  count(kind)
end

local function ws_open()
  return http.websocket_connect(URL:gsub("^http", "ws") .. "/ws", {timeout = EXCHANGE_TIMEOUT})
end

local function bounded(limit, body)
  if limit then return lasync.timeout(limit, body) end
  return body()
end

-- Runs body() until the load stops, each run within limit seconds (nil:
-- a steady loop, each of its exchanges bounded); an error is a lost
-- request of kind (a fresh connection follows).
local function keep(kind, body, pause, limit)
  while not stopping do
    local ok, err = pcall(bounded, limit, body)
    if not ok then
      if lasync.CancelledError:is(err) then error(err, 0) end
      fail(kind, class_of(err))
      lasync.sleep(0.1)
    end
    lasync.sleep(pause or 0)
  end
end

-- ------------------------------------------------------- steady load --

local function steady_echo(kind, tls)
  keep(kind, function()
    local reader, writer = lasync.timeout(EXCHANGE_TIMEOUT, open_echo, tls)
    local _ <close> = writer
    while not stopping do
      lasync.timeout(EXCHANGE_TIMEOUT, echo_once, kind, reader, writer, message(any_size()))
      lasync.sleep(0.01)
    end
  end)
end

local function steady_http()
  keep("http", function()
    while not stopping do
      http_once("http")
      lasync.sleep(0.01)
    end
  end)
end

local function steady_ws()
  keep("ws", function()
    local ws = ws_open()
    while not stopping do
      lasync.timeout(EXCHANGE_TIMEOUT, ws_once, "ws", ws)
      lasync.sleep(0.01)
    end
    ws:close()
  end)
end

-- ------------------------------------------------------------- churn --

local function churn_echo(kind, tls)
  keep(kind, function()
    local reader, writer = open_echo(tls)
    local _ <close> = writer
    echo_once(kind, reader, writer, message(any_size()))
  end, 0.02, EXCHANGE_TIMEOUT)
end

local function churn_http()
  keep("churn-http", function() http_once("churn-http", {Connection = "close"}) end, 0.02,
    EXCHANGE_TIMEOUT)
end

local function churn_ws()
  keep("churn-ws", function()
    local ws = ws_open()
    ws_once("churn-ws", ws)
    ws:close()
  end, 0.02, EXCHANGE_TIMEOUT)
end

-- ------------------------------------------------------------- resets --

-- A raw TCP connection that close() resets (SO_LINGER on, 0 s); over
-- TLS if tls (LuaSec's wrap of lasync.socket).
local TLS_PARAMS = {mode = "client", verify = "peer", cafile = os.getenv("SOAK_CA")}
local function resetting(port, tls)
  local s = socket.tcp()
  s:settimeout(EXCHANGE_TIMEOUT)
  assert(s:connect(HOST, port))
  assert(s:setoption("linger", {on = true, timeout = 0}))
  if not tls then return s end
  local c = assert(ssl.wrap(s, TLS_PARAMS))
  assert(c:dohandshake())
  return c
end

local function reset(s)
  s:close()
  resets = resets + 1
  count("reset")
end

-- Mid-write: the request is half sent when the client resets: an echo
-- message (plain and TLS), or an HTTP body shorter than its Content-Length.
local function reset_mid_write()
  for _, tls in ipairs {false, true} do
    local s = resetting(tls and TLS or ECHO, tls)
    s:send(message(math.random(1000, 100000)))
    reset(s)
  end
  local s = resetting(HTTP)
  s:send(("POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 100000\r\n\r\n%s")
    :format(message(math.random(10, 50000))))
  lasync.sleep(0.005)
  reset(s)
end

-- Mid-read: the response is coming when the client resets; what came of
-- it must be right.
local function reset_mid_read()
  for _, tls in ipairs {false, true} do
    local s = resetting(tls and TLS or ECHO, tls)
    local msg = message(65536)  -- within the socket buffers: the send ends
    s:send(msg)
    local got = assert(s:receive(math.random(1, 65536)))
    if got ~= msg:sub(1, #got) then fail("reset", "corrupted echo before the reset") end
    reset(s)
  end
  local s = resetting(HTTP)
  local n = math.random(256 * 1024, 1 << 20)
  s:send(("GET /big?n=%d HTTP/1.1\r\nHost: soak\r\n\r\n"):format(n))
  local head = {}
  repeat head[#head + 1] = assert(s:receive("*l")) until head[#head] == ""
  local got = assert(s:receive(math.random(1, 100000)))
  if head[1] ~= "HTTP/1.1 200 OK" or got ~= big_body(#got) then
    fail("reset", "corrupted response before the reset")
  end
  reset(s)
end

local function resets_loop()
  keep("reset", function()
    reset_mid_write()
    reset_mid_read()
  end, 0.05, EXCHANGE_TIMEOUT * 2)
end

-- --------------------------------------------------------- half-close --

-- Echo: the message, then write_eof; the echo comes back, then the end.
local function half_close_echo()
  local reader, writer = open_echo(false)
  local _ <close> = writer
  local msg = message(any_size())
  writer:write(msg)
  writer:write_eof()
  local got = reader:read()
  if got ~= msg then return fail("half-close", "corrupted echo") end
  count("half-close")
end

-- HTTP: the request, then shutdown("send"); the whole response follows.
local function half_close_http()
  local s = socket.tcp()
  s:settimeout(EXCHANGE_TIMEOUT)
  assert(s:connect(HOST, HTTP))
  local msg = message(any_size())
  s:send(("POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: %d\r\n\r\n%s"):format(#msg, msg))
  s:shutdown("send")
  local res = assert(s:receive("*a"))
  s:close()
  local head, body = res:match("^(.-\r\n)\r\n(.*)$")
  if not head or not head:find("^HTTP/1.1 200 ") then return fail("half-close-http", "bad response") end
  if body ~= msg then return fail("half-close-http", "corrupted body") end
  count("half-close-http")
end

local function half_close_loop()
  keep("half-close", function()
    lasync.timeout(EXCHANGE_TIMEOUT, half_close_echo)
    lasync.timeout(EXCHANGE_TIMEOUT, half_close_http)
  end, 0.05)
end

-- --------------------------------------------------------- slow peers --

-- A writer that sends a message in 10 pieces, a fifth of the read
-- timeout apart (each of the server's reads completes in time).
local function slow_writer()
  local reader, writer = open_echo(false)
  local _ <close> = writer
  local msg = message(1000)
  for i = 1, #msg, 100 do
    writer:write(msg:sub(i, i + 99))
    lasync.sleep(READ_TIMEOUT / 5)
  end
  if reader:readexactly(#msg) ~= msg then return fail("slow-writer", "corrupted echo") end
  count("slow-writer")
end

-- An HTTP body sent in 5 pieces over a third of the HTTP timeout.
local function slow_http_writer()
  local reader, writer = lasync.open_connection(HOST, HTTP)
  local _ <close> = writer
  local msg = message(5000)
  writer:write(("POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: %d\r\n\r\n"):format(#msg))
  for i = 1, #msg, 1000 do
    writer:write(msg:sub(i, i + 999))
    lasync.sleep(HTTP_TIMEOUT / 15)
  end
  local head = reader:readuntil("\r\n\r\n")
  local len = tonumber(head:lower():match("\r\ncontent%-length: *(%d+)"))
  if not head:find("^HTTP/1.1 200 ") or not len then return fail("slow-http-writer", "bad response") end
  if reader:readexactly(len) ~= msg then return fail("slow-http-writer", "corrupted body") end
  count("slow-http-writer")
end

-- A reader that takes 512 KiB back in 8 KiB pieces, 20 ms apart: the
-- server's output keeps moving, so its write timeout never fires.
local function slow_reader()
  local reader, writer = open_echo(false)
  local _ <close> = writer
  local msg = message(512 * 1024)
  writer:write(msg)
  local got = {}
  for i = 1, #msg, 8192 do
    got[#got + 1] = reader:readexactly(math.min(8192, #msg - i + 1))
    lasync.sleep(0.02)
  end
  if table.concat(got) ~= msg then return fail("slow-reader", "corrupted echo") end
  count("slow-reader")
end

local function slow_loop(kind, fn)
  keep(kind, fn, 0.1, EXCHANGE_TIMEOUT * 2)
end

-- ---------------------------------------------------- over-slow peers --

-- Reads what the server sends until it closes; returns the bytes, and
-- whether it did close within `within` seconds.
local function read_to_close(reader, within)
  local got = {}
  local ok, err = pcall(lasync.timeout, within, function()
    while true do
      local data = reader:read(65536)
      if data == "" then return end
      got[#got + 1] = data
    end
  end)
  if not ok and lasync.TimeoutError:is(err) then return table.concat(got), false end
  return table.concat(got), true  -- an end of input or a reset: closed
end

-- Sends 8 MiB to the echo and reads nothing: the server's output stops,
-- and past the write timeout it must close. What came back is checked.
local function never_reads()
  local reader, writer = open_echo(false)
  local _ <close> = writer
  local msg = POOL:rep(8)
  writer:write(msg)
  lasync.sleep(WRITE_TIMEOUT + 2)
  local got, closed = read_to_close(reader, WRITE_TIMEOUT + 5)
  if got ~= msg:sub(1, #got) then return fail("never-reads", "corrupted echo") end
  if not closed or #got == #msg then return fail("never-reads", "not closed by the server") end
  count("never-reads")
end

-- Says nothing: closed by the read timeout (echo) or, over HTTP, with
-- nothing of a request sent, by the HTTP timeout.
local function silent(port, timeout)
  local reader, writer = lasync.open_connection(HOST, port)
  local _ <close> = writer
  local got, closed = read_to_close(reader, 2 * timeout + 3)
  if not closed or got ~= "" then return fail("silent", "not closed by the server") end
  count("silent")
end

-- Starts an HTTP head and stops: 408 and the close, within the timeout.
local function stalled_head()
  local reader, writer = lasync.open_connection(HOST, HTTP)
  local _ <close> = writer
  writer:write("GET /echo HTTP/1.1\r\nHost: so")
  local got, closed = read_to_close(reader, 2 * HTTP_TIMEOUT + 3)
  if not closed or not got:find("^HTTP/1.1 408 ") then return fail("stalled-head", "no 408 and close") end
  count("stalled-head")
end

local function over_slow_loop()
  keep("over-slow", function()
    lasync.gather(never_reads, function() silent(ECHO, READ_TIMEOUT) end,
      function() silent(HTTP, HTTP_TIMEOUT) end, stalled_head)
  end, 1, EXCHANGE_TIMEOUT * 4)
end

-- ------------------------------------------------------------ samples --

local function read_file(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- The master's children, the workers, by pid.
local function workers()
  local list = {}
  for p in (read_file(("/proc/%d/task/%d/children"):format(MASTER, MASTER)) or ""):gmatch("%d+") do
    list[#list + 1] = tonumber(p)
  end
  table.sort(list)
  return list
end

local function rss_kb(p)
  return tonumber((read_file(("/proc/%d/status"):format(p)) or ""):match("VmRSS:%s*(%d+)"))
end

local function fds(p)
  local ls = io.popen(("ls /proc/%d/fd 2>/dev/null"):format(p))
  local n = 0
  for _ in ls:lines() do n = n + 1 end
  ls:close()
  return n
end

-- "kind n, ...", by kind ("kind n" sorts as its kind: a space sorts first).
local function counts_text(t)
  local out = {}
  for k, n in pairs(t) do out[#out + 1] = ("%s %d"):format(k, n) end
  table.sort(out)
  return #out > 0 and table.concat(out, ", ") or "none"
end

local samples = {}  -- every 10 s: {t=, pids=}

-- Each worker's Lua heap and RSS after a full collection (GET /memory,
-- on new connections until each worker answered once):
-- mem[pid] = {lua = kB, rss = kB}.
local function memory(pids)
  local mem = {}
  for _ = 1, 20 do
    local ok, res = pcall(http.request, "GET", URL .. "/memory", {timeout = 5,
      headers = {Connection = "close"}})
    if ok then
      local p, lua, rss = res.body:match("(%d+) (%d+) (%d+)")
      mem[tonumber(p)] = {lua = tonumber(lua), rss = tonumber(rss)}
    end
    if #pids > 0 and mem[pids[1]] and mem[pids[#pids]] then break end
  end
  return mem
end

local function sample(t)
  local s = {t = t, pids = workers()}
  local parts = {}
  local now = {}
  for _, p in ipairs(s.pids) do now[p] = rss_kb(p) or "?" end
  s.mem = memory(s.pids)
  for _, p in ipairs(s.pids) do
    local m = s.mem[p] or {lua = "?", rss = "?"}
    parts[#parts + 1] = ("pid %d rss %s kB (collected %s kB, lua %s kB) fds %d")
      :format(p, now[p], m.rss, m.lua, fds(p))
  end
  samples[#samples + 1] = s
  print(("[%4d s] %s | done: %s | resets %d | failed: %s"):format(t, table.concat(parts, "; "),
    counts_text(done), resets, counts_text(failed)))
  io.stdout:flush()
end

-- ------------------------------------------------------------ verdict --

-- Each worker's RSS, one reading a second: rss_log[pid] = {{t, kB}, ...}.
local rss_log = {}
local function watch_rss(start)
  while not stopping do
    local t = lasync.time() - start
    for _, p in ipairs(workers()) do
      rss_log[p] = rss_log[p] or {}
      table.insert(rss_log[p], {t, rss_kb(p)})
    end
    lasync.sleep(1)
  end
end

local function median(list)
  table.sort(list)
  return list[(#list + 1) // 2]
end

-- The median of a worker's readings in [from, to), or nil.
local function window_median(log, from, to)
  local v = {}
  for _, r in ipairs(log) do
    if r[1] >= from and r[1] < to and r[2] then v[#v + 1] = r[2] end
  end
  return v[1] and median(v)
end

-- RSS_WINDOW, 2 RSS_WINDOW, ... while a window fits, and the last window
-- of the run if they did not end with it.
local function window_starts()
  local list, W = {}, RSS_WINDOW
  for from = W, SECONDS - W, W do list[#list + 1] = from end
  if list[#list] + W < SECONDS then list[#list + 1] = SECONDS - W end
  return list
end

-- Each window's median of a log, as text, and the largest of them over
-- the first's in per cent.
local function window_medians(log)
  local W = RSS_WINDOW
  local base, top, series = window_median(log, W, 2 * W), 0, {}
  for _, from in ipairs(window_starts()) do
    local m = window_median(log, from, from + W)
    series[#series + 1] = m and ("%d"):format(m) or "?"
    top = math.max(top, m or math.huge)
  end
  return table.concat(series, " "), base and (top - base) / base * 100 or math.huge
end

-- A worker's readings after a full collection, from the samples.
local function collected_log(p)
  local log = {}
  for _, s in ipairs(samples) do
    if s.mem[p] then log[#log + 1] = {s.t, s.mem[p].rss} end
  end
  return log
end

-- Between collections, RSS carries the garbage the Lua GC has not reached
-- yet: the large transient strings (1 MiB bodies, 256 KiB messages) make
-- it a sawtooth of some ±40 % over seconds, and the medians of a minute's
-- readings move by ±5 % with it. The rule is therefore on the readings
-- after a full collection (every 10 s): the median of each worker's in
-- each window of RSS_WINDOW seconds after the first (warm-up), the last
-- one ending with the load, is less than 5 % above the median of the first
-- window after the warm-up. A leak of C or Lua memory moves those medians;
-- the garbage does not. The medians of the readings every second (under
-- load, between collections) and the largest reading are shown beside.
local function rss_verdict()
  local ok, lines = true, {}
  local base_pids = samples[1].pids
  for _, p in ipairs(base_pids) do
    local series, growth = window_medians(collected_log(p))
    local live, live_growth = window_medians(rss_log[p] or {})
    local peak = 0
    for _, r in ipairs(rss_log[p] or {}) do
      if r[1] >= RSS_WINDOW then peak = math.max(peak, r[2] or 0) end
    end
    ok = ok and growth < 5
    lines[#lines + 1] = ("worker %d: after a collection, medians of %d s windows from %d s (kB): %s;"
      .. " largest %+.1f %% over the first\n    every second: %s (largest %+.1f %%);"
      .. " largest reading %d kB")
      :format(p, RSS_WINDOW, RSS_WINDOW, series, growth, live, live_growth, peak)
  end
  for _, s in ipairs(samples) do
    if table.concat(s.pids, ",") ~= table.concat(base_pids, ",") then
      ok = false
      lines[#lines + 1] = ("workers changed at %d s: %s (a worker died?)"):format(s.t, table.concat(s.pids, ","))
      break
    end
  end
  return ok, table.concat(lines, "\n  ")
end

local function verdict()
  local total = 0
  for _, n in pairs(done) do total = total + n end
  local rss_ok, rss_text = rss_verdict()
  local lost_ok = next(failed) == nil
  print(("soak client: %d s, %d exchanges verified, %d connections reset by the client")
    :format(SECONDS, total, resets))
  print(("  RSS (growth under 5 %%): %s\n  %s"):format(rss_ok and "pass" or "FAIL", rss_text))
  print(("  no byte corrupted, no request lost: %s%s"):format(lost_ok and "pass" or "FAIL",
    lost_ok and "" or " (" .. counts_text(failed) .. ")"))
  return rss_ok and lost_ok
end

-- ---------------------------------------------------------------- run --

local loads = {
  function() steady_echo("echo", false) end, function() steady_echo("echo", false) end,
  function() steady_echo("echo", false) end, function() steady_echo("echo", false) end,
  function() steady_echo("tls", true) end, function() steady_echo("tls", true) end,
  steady_http, steady_http, steady_http, steady_http, steady_ws, steady_ws, steady_ws, steady_ws,
  function() churn_echo("churn-echo", false) end, function() churn_echo("churn-tls", true) end,
  churn_http, churn_ws, resets_loop, half_close_loop,
  function() slow_loop("slow-writer", slow_writer) end,
  function() slow_loop("slow-http-writer", slow_http_writer) end,
  function() slow_loop("slow-reader", slow_reader) end,
  over_slow_loop,
}

local tasks = {}
for i, fn in ipairs(loads) do tasks[i] = lasync.spawn(fn) end
local start = lasync.time()
tasks[#tasks + 1] = lasync.spawn(watch_rss, start)
sample(0)
for t = SAMPLE_EVERY, SECONDS, SAMPLE_EVERY do
  lasync.sleep(math.max(0, start + t - lasync.time()))
  sample(t)
end
lasync.sleep(math.max(0, start + SECONDS - lasync.time()))  -- SECONDS not a multiple of 10
-- The load stops: each loop ends its exchange in hand (bounded), then returns.
stopping = true
local finished = lasync.wait(tasks, {timeout = EXCHANGE_TIMEOUT * 5})
for _, t in ipairs(tasks) do
  if not t:done() then fail("stop", "a load task did not end") t:cancel() end
end
lasync.sleep(0.1)
for _, t in ipairs(finished) do
  if not t:cancelled() and t:exception() then fail("stop", class_of(t:exception())) end
end
print(("[%4d s] load stopped"):format(math.floor(lasync.time() - start)))
if not verdict() then os.exit(1) end
