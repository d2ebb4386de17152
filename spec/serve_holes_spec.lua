--- `lasync serve` against hostile peers (issue 16's three holes): a peer
-- that never reads (--write-timeout, --max-buffer), one that drips a line
-- a byte at a time (--read-timeout), peers that reset (one log line each,
-- rate-limited). The peers are Python's sockets (/usr/bin/python3), the
-- server a subprocess on 127.0.0.1 port 0, both stopped by their pid.
local lasync = require "lasync"
local helper = require "helper"

local ROOT = debug.getinfo(1, "S").source:match("^@(.-)spec/[^/]*$")
if ROOT == "" then ROOT = "./" end
local LASYNC = ROOT .. "scripts/lasync"
local PYTHON = "/usr/bin/python3"

-- The peers, by the first argument; the second is the port. Each prints
-- its own port once connected.
local PEERS = [[
import select, socket, struct, sys, time
kind, port = sys.argv[1], int(sys.argv[2])
def connect():
    s = socket.create_connection(("127.0.0.1", port))
    return s
if kind == "never-read":  # connects, then reads nothing until stdin ends
    s = connect()
    print(s.getsockname()[1], flush=True)
    sys.stdin.read()
elif kind == "drip":  # a byte every 50 ms, never a newline
    s = connect()
    print(s.getsockname()[1], flush=True)
    for i in range(200):
        try:
            s.send(b"x")
            if select.select([s], [], [], 0)[0] and s.recv(1) == b"":
                print("closed", i + 1, flush=True); sys.exit(0)
        except OSError:
            print("closed", i + 1, flush=True); sys.exit(0)
        time.sleep(0.05)
    print("open", flush=True)
elif kind == "reset-at-once":  # connects and resets before any exchange
    s = connect()
    print(s.getsockname()[1], flush=True)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    print("done", flush=True)
elif kind == "reset":  # n times: one line echoed, then a reset
    for i in range(int(sys.argv[3])):
        s = connect()
        s.sendall(b"hi\n")
        got = b""
        while len(got) < 3:
            got += s.recv(3 - len(got))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        if i == 0: print(s.getsockname()[1], flush=True)
        s.close()
    print("done", flush=True)
]]

-- The handlers.
local ECHO = [[
return function(r, w)
  for line in r:lines() do
    w:write(line .. "\n")
    w:drain()
  end
end
]]
local FLOOD = [[
local chunk = ("f"):rep(65536)
return function(_, w)
  while true do
    w:write(chunk)
    w:drain()
  end
end
]]
local HOG = [[
local chunk = ("h"):rep(65536)
return function(_, w)
  while true do w:write(chunk) end
end
]]

-- Starts `lasync serve script --listen 127.0.0.1:0 ARGS...`; returns the
-- server {p=, port=, log= (its lines so far), reader= (a task that reads
-- the log to its end)} once it listens.
local function serve(script, ...)
  local argv = {LASYNC, "serve", script, "--listen", "127.0.0.1:0", ...}
  local p = lasync.create_subprocess_exec(argv, {stderr = "pipe", stdin = "null",
    stdout = "null", cwd = ROOT})
  local srv, listening = {p = p, log = {}}, lasync.Event()
  srv.reader = lasync.spawn(function()
    for line in p.stderr:lines() do
      srv.log[#srv.log + 1] = line
      srv.port = srv.port or tonumber(line:match("listening on 127%.0%.0%.1:(%d+)"))
      if srv.port then listening:set() end
    end
    p.stderr:close()
  end)
  local ok, err = pcall(lasync.wait_for, function() return listening:wait() end, 10)
  if not ok then
    p:kill()
    p:wait()
    srv.reader:await()
    error(err, 0)
  end
  return srv
end

-- Stops the server by its pid (SIGTERM); returns its whole log.
local function stop(srv)
  srv.p:terminate()
  assert.equal(0, srv.p:wait())
  srv.reader:await()
  return table.concat(srv.log, "\n") .. "\n"
end

-- Polls until fn(log lines) returns a true value (a hang guard of 20 s).
local function log_until(srv, what, fn)
  for _ = 1, 2000 * helper.SLOWDOWN do
    local v = fn(srv.log)
    if v then return v end
    lasync.sleep(0.01)
  end
  error("timed out waiting for " .. what .. "; log:\n" .. table.concat(srv.log, "\n"), 2)
end

local function log_line(srv, pattern)
  return log_until(srv, pattern, function(log)
    for _, line in ipairs(log) do
      if line:find(pattern) then return line end
    end
  end)
end

-- Starts a Python peer of that kind; returns the Process (stdout piped,
-- stdin piped for never-read) and the port it connected from.
local function peer(kind, port, ...)
  -- env: Python without the sanitizers' LD_PRELOAD of make test-asan
  local p = lasync.create_subprocess_exec({"env", "-u", "LD_PRELOAD", PYTHON, "-c", PEERS, kind,
    tostring(port), ...},
    {stdin = kind == "never-read" and "pipe" or "null", stdout = "pipe"})
  return p, tonumber(p.stdout:readline())
end

-- The rest of a peer's output, once it exited (with status 0).
local function peer_done(p)
  if p.stdin then p.stdin:close() end
  local out = p.stdout:read()
  p.stdout:close()
  assert.equal(0, p:wait())
  return out
end

-- How many log lines match pattern.
local function count(log, pattern)
  local n = 0
  for _, line in ipairs(log) do
    if line:find(pattern) then n = n + 1 end
  end
  return n
end

describe("lasync serve against hostile peers", function()
  local scratch = helper.scratch()
  lazy_teardown(scratch.cleanup)
  local echo = scratch.write("echo.lua", ECHO)

  -- Serves the handler with the flag against a peer that never reads:
  -- the connection is closed with one log line, error (its class first).
  local function never_read_closed(name, handler, flag, value, error)
    local srv = serve(scratch.write(name, handler), flag, value)
    local p, port = peer("never-read", srv.port)
    local line = log_line(srv, "closed: " .. error:match("^%a+"))
    assert.matches("connection from 127.0.0.1:" .. port .. " closed: " .. error, line, 1, true)
    peer_done(p)
    local log = stop(srv)
    assert.is_nil(log:lower():find("traceback"))
  end

  it("--write-timeout closes a peer that never reads while the handler drains",
    helper.async(function()
      never_read_closed("flood.lua", FLOOD, "--write-timeout", "0.3",
        "TimeoutError: write timed out: no output sent for 0.3 s")
    end, 30))

  it("--read-timeout closes a peer that drips a line though bytes keep coming",
    helper.async(function()
      local srv = serve(echo, "--read-timeout", "0.3")
      local p, port = peer("drip", srv.port)
      local sent = tonumber(peer_done(p):match("^closed (%d+)\n$"))
      assert.is_truthy(sent, "the drip peer was never closed")
      assert.is_true(sent < 200)
      local line = log_line(srv, "closed: TimeoutError")
      assert.matches("connection from 127.0.0.1:" .. port .. " closed: TimeoutError: "
        .. "read timed out: no complete read in 0.3 s", line, 1, true)
      stop(srv)
    end, 30))

  it("logs a peer's reset as one line naming the peer, no traceback", helper.async(function()
    local srv = serve(echo)
    local p, port = peer("reset", srv.port, "1")
    assert.equal("done\n", peer_done(p))
    log_line(srv, "closed: ")
    local log = stop(srv)
    assert.equal(1, count(srv.log, "connection from"))
    assert.matches("connection from 127.0.0.1:" .. port .. " closed: ConnectionResetError: ",
      log, 1, true)
    assert.is_nil(log:lower():find("traceback"))
    assert.is_nil(log:find("Unhandled error", 1, true))
  end, 30))

  -- A connection reset while it waited to be accepted has no peer address
  -- left to ask: the line must not name the server's own address instead.
  it("logs a peer that reset before it was accepted as unknown", helper.async(function()
    local srv = serve(echo)
    srv.p:send_signal("SIGSTOP")  -- the reset reaches the accept queue first
    local p = peer("reset-at-once", srv.port)
    local out = peer_done(p)
    srv.p:send_signal("SIGCONT")
    assert.equal("done\n", out)
    log_line(srv, "closed: ")
    local log = stop(srv)
    assert.matches("connection from ? closed: ConnectionResetError: ", log, 1, true)
    assert.is_nil(log:find("connection from 127.0.0.1:" .. srv.port, 1, true))
  end, 30))

  -- How many resets the log tells of: a line each, or counted in an
  -- "... and M more".
  local function resets(log)
    local n = count(log, "connection from 127%.0%.0%.1:%d+ closed: ConnectionResetError")
    for _, line in ipairs(log) do
      n = n + tonumber(line:match("%.%.%. and (%d+) more connection errors$") or 0)
    end
    return n
  end

  it("rate-limits the lines of 1,000 resets and counts the rest", helper.async(function()
    local srv = serve(echo)
    local p = peer("reset", srv.port, "1000")
    assert.equal("done\n", peer_done(p))
    assert.equal(1000, log_until(srv, "1,000 resets logged", function(log)
      local n = resets(log)
      return n >= 1000 and n
    end))
    local log = stop(srv)
    assert.is_true(#srv.log < 100, "the log grew to " .. #srv.log .. " lines")
    assert.is_true(count(srv.log, "%.%.%. and %d+ more connection errors$") >= 1)
    assert.is_nil(log:lower():find("traceback"))
  end, 60))

  it("counts the resets not yet reported when it stops", helper.async(function()
    local srv = serve(echo)
    local p = peer("reset", srv.port, "30")
    assert.equal("done\n", peer_done(p))
    log_until(srv, "10 lines", function(log) return resets(log) >= 10 end)
    lasync.sleep(0.3)  -- the 30 handlers see their resets, within the second
    stop(srv)
    assert.equal(30, resets(srv.log))
  end, 30))

  it("--max-buffer closes a connection whose unsent output passes it", helper.async(function()
    never_read_closed("hog.lua", HOG, "--max-buffer", "1000000",
      "OSError: unsent output passed max_buffer (1000000 bytes)")
  end, 30))

  it("keeps the traceback of a handler's own error", helper.async(function()
    local srv = serve(scratch.write("boom.lua", 'return function() error("boom") end'))
    local r, w = lasync.open_connection("127.0.0.1", srv.port)
    assert.equal("", r:read())
    w:close()
    log_line(srv, "Unhandled error")
    assert.matches("boom\nstack traceback:", stop(srv), 1, true)
  end, 30))

  it("--help lists the flags; a bad value is a usage error", function()
    local out = helper.shell(LASYNC .. " --help")
    for _, flag in ipairs {"--read-timeout S", "--write-timeout S", "--max-buffer N"} do
      assert.matches(flag, out, 1, true)
    end
    local err, code = helper.shell(LASYNC .. " serve " .. echo .. " --read-timeout x 2>&1")
    assert.equal(2, code)
    assert.matches("--read-timeout needs a positive number", err, 1, true)
    -- past what start_server takes: refused here, not when listening
    err, code = helper.shell(LASYNC .. " serve " .. echo .. " --max-buffer 5000000000 2>&1")
    assert.equal(2, code)
    assert.matches("--max-buffer needs an integer from 1 to 4294967295", err, 1, true)
    err, code = helper.shell(LASYNC .. " serve " .. echo .. " --write-timeout 1e9 2>&1")
    assert.equal(2, code)
    assert.matches("--write-timeout needs a positive number (at most 604800)", err, 1, true)
  end)
end)
