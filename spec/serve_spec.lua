--- `lasync serve` (scripts/lasync, lua/lasync/serve.lua), run as a
-- subprocess on 127.0.0.1 and Unix sockets; the spec talks to it with
-- lasync streams and reads its log from a temporary file. Every server a
-- test starts is stopped by the test, or killed by after_each.
local lasync = require "lasync"
local helper = require "helper"

-- The checkout, for examples/: this file is <root>spec/serve_spec.lua.
local ROOT = debug.getinfo(1, "S").source:match("^@(.-)spec/[^/]*$")

local STAMP = "%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ lasync%[%d+%]: "

local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function slurp(path)
  local f = io.open(path)
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

describe("lasync serve", function()
  local scratch = require("helper").scratch()
  local base = scratch.base
  local running = {}  -- servers not yet stopped

  local tmp, write = scratch.tmp, scratch.write

  after_each(function()
    for srv in pairs(running) do helper.kill_logged(slurp(srv.log)) end
    running = {}
  end)

  lazy_teardown(scratch.cleanup)

  -- Polls fn() every 10 ms until it returns a true value, for up to
  -- `timeout` seconds; returns its values or fails with what.
  local function poll(what, timeout, fn)
    local deadline = lasync.time() + (timeout or 3)
    while true do
      local res = table.pack(fn())
      if res[1] then return table.unpack(res, 1, res.n) end
      if lasync.time() > deadline then error("timed out waiting for " .. what, 2) end
      lasync.sleep(0.01)
    end
  end

  -- Starts `lasync serve ARGS` in the background; returns the server:
  -- {log=, status=, pid=} once its first listen line is logged.
  local function start(args, listening)
    local srv = {log = tmp("log" .. os.clock()), status = tmp("status" .. os.clock())}
    os.remove(srv.status)
    assert(os.execute(("cd %s && (lasync serve %s >/dev/null 2>%s </dev/null; "
      .. "echo $? >%s) &"):format(quote(ROOT), args, srv.log, srv.status)))
    running[srv] = true
    srv.pid = poll("the first log line", 3, function()
      return slurp(srv.log):match("lasync%[(%d+)%]")
    end)
    if listening ~= false then
      poll("listening", 3, function() return slurp(srv.log):find("listening on") end)
    end
    return srv
  end

  local function log_has(srv, pattern, timeout)
    return poll("log: " .. pattern, timeout, function() return slurp(srv.log):match(pattern) end)
  end

  -- Waits for the server to exit; returns its exit status.
  local function exited(srv, timeout)
    local code = poll("exit", timeout, function() return tonumber(slurp(srv.status)) end)
    running[srv] = nil
    return code
  end

  local function signal(srv, sig)
    assert(os.execute(("kill -%s %s"):format(sig, srv.pid)))
  end

  local function port_of(srv)
    return tonumber(log_has(srv, "listening on 127%.0%.0%.1:(%d+)"))
  end

  local function stop(srv)
    signal(srv, "TERM")
    assert.equal(0, exited(srv))
  end

  -- Runs `lasync serve ARGS` to its end: its output (stdout and stderr)
  -- and exit status.
  local function run_serve(args)
    local p = assert(io.popen(("cd %s && lasync serve %s 2>&1 </dev/null"):format(quote(ROOT), args)))
    local out = p:read("a")
    local _, _, code = p:close()
    return out, code
  end

  local function echo_line(port, text)
    local r, w = lasync.open_connection("127.0.0.1", port)
    w:write(text)
    local got = r:readline()
    w:close()
    return got
  end

  it("serves the echo example and stops on SIGTERM with exit 0", helper.async(function()
    local srv = start("examples/echo.lua --listen 127.0.0.1:0")
    assert.equal("hello\n", echo_line(port_of(srv), "hello\n"))
    stop(srv)
    local log = slurp(srv.log)
    assert.truthy(log:match("^" .. STAMP .. "lasync [%d.]+ serving examples/echo.lua with 1 worker\n"))
    assert.truthy(log:match(STAMP .. "SIGTERM: draining %(grace 5 s%)\n"))
    assert.truthy(log:match(STAMP .. "stopped\n$"))
  end))

  it("exits 1 with a clear error when the script cannot load", function()
    local bad = write("bad.lua", "return function(\n")
    local out, code = run_serve(quote(bad) .. " --listen 127.0.0.1:0")
    assert.equal(1, code)
    assert.truthy(out:find("cannot load " .. bad, 1, true), out)
    local num = write("num.lua", "return 42\n")
    out, code = run_serve(quote(num) .. " --workers 2 --listen 127.0.0.1:0")
    assert.equal(1, code)
    assert.truthy(out:find("must return a function(reader, writer) or a table", 1, true), out)
    local raises = write("raises.lua", "error('no config')\n")
    out, code = run_serve(quote(raises) .. " --listen 127.0.0.1:0")
    assert.equal(1, code)
    assert.truthy(out:find("no config", 1, true), out)
    out, code = run_serve(quote(base .. "-missing.lua"))
    assert.equal(1, code)
    assert.truthy(out:find("cannot open", 1, true), out)
  end)

  it("exits 2 on bad usage", function()
    local cases = {
      [""] = "serve: handler script expected",
      ["examples/echo.lua --bogus"] = "serve: unknown option '--bogus'",
      ["examples/echo.lua --workers 0"] = "serve: --workers needs an integer from 1 to 2147483647, got '0'",
      ["examples/echo.lua --workers 1.5"] = "--workers needs an integer from 1 to 2147483647",
      ["examples/echo.lua --max-connections 99999999999"] =
        "serve: --max-connections needs an integer from 1 to 2147483647, got '99999999999'",
      ["examples/echo.lua --grace x"] = "serve: --grace needs a positive number, got 'x'",
      ["examples/echo.lua --listen"] = "serve: --listen needs a value",
      ["examples/echo.lua --listen 127.0.0.1"] = "bad listen address '127.0.0.1': no port",
      ["examples/echo.lua --listen 127.0.0.1:99999"] =
        "bad listen address '127.0.0.1:99999': port 99999 is out of range (0 to 65535)",
      ["examples/echo.lua --listen :80"] = "bad listen address ':80': no host",
      ["examples/echo.lua --listen ::1:80"] = "an IPv6 address goes in brackets, as [::1]:PORT",
      ["examples/echo.lua --listen localhost:http"] = "port 'http' is not a number",
      ["examples/echo.lua --listen unix:"] = "bad listen address 'unix:': no path",
      ["examples/echo.lua --workers 2 --listen unix:/tmp/x"] = "needs --workers 1",
      ["examples/echo.lua --quiet"] = "serve: --quiet needs --http",
      ["examples/echo.lua --tls-key k.pem"] = "serve: --tls-key needs --tls-cert",
      ["examples/echo.lua --tls-cert"] = "serve: --tls-cert needs a value",
    }
    for args, msg in pairs(cases) do
      local out, code = run_serve(args)
      assert.equal(2, code, args)
      assert.truthy(out:find(msg, 1, true), args .. ": " .. out)
      assert.matches("^lasync: [^\n]+\n$", out)  -- one line, not the whole help
    end
  end)

  it("drains on SIGTERM: a slow handler finishes within the grace period", helper.async(function()
    local script = write("slow.lua", [[
      local lasync = require "lasync"
      return function(r, w)
        r:readline()
        w:write("got\n")
        lasync.sleep(0.3)
        w:write("done\n")
      end]])
    local srv = start(quote(script) .. " --listen 127.0.0.1:0 --grace 3")
    local r, w = lasync.open_connection("127.0.0.1", port_of(srv))
    w:write("go\n")
    assert.equal("got\n", r:readline())
    signal(srv, "TERM")
    log_has(srv, "SIGTERM: draining")
    -- no new connections while draining (the log line comes just before)
    local port = port_of(srv)
    poll("refused", 3, function()
      local ok, _, w2 = pcall(lasync.open_connection, "127.0.0.1", port)
      if ok then w2:close() end
      return not ok
    end)
    assert.equal("done\n", r:readline())
    assert.equal("", r:read(10))
    w:close()
    assert.equal(0, exited(srv))
    assert.falsy(slurp(srv.log):find("grace period"))
  end))

  it("cancels a handler that outlives the grace period, then runs on_stop",
     helper.async(function()
    local script = write("forever.lua", [[
      local lasync = require "lasync"
      return {
        handler = function(r, w)
          w:write("got\n")
          lasync.sleep(100)
        end,
        on_start = function() lasync.sleep(0.01); io.stderr:write("on_start ran\n") end,
        on_stop = function() io.stderr:write("on_stop ran\n") end,
      }]])
    local srv = start(quote(script) .. " --listen 127.0.0.1:0 --grace 0.2")
    local r, w = lasync.open_connection("127.0.0.1", port_of(srv))
    assert.equal("got\n", r:readline())
    local earlier = helper.after(0.15)
    signal(srv, "INT")
    assert.equal("", r:read(10))
    assert.is_true(earlier:is_set())  -- the close waited for the grace (0.2 s)
    w:close()
    assert.equal(0, exited(srv))
    local log = slurp(srv.log)
    assert.truthy(log:find("on_start ran\n", 1, true))
    assert.truthy(log:find("SIGINT: draining (grace 0.2 s)", 1, true))
    assert.truthy(log:find("grace period of 0.2 s over: cancelled 1 tasks", 1, true))
    assert.truthy(log:find("on_stop ran\n" .. "[^\n]*stopped\n$"))
  end))

  -- A server whose handler catches its cancellation, with a client in it.
  local function stubborn(grace)
    local script = write("stubborn.lua", [[
      local lasync = require "lasync"
      return function(r, w)
        w:write("in\n")
        while true do pcall(lasync.sleep, 10) end
      end]])
    local srv = start(quote(script) .. " --listen 127.0.0.1:0 --grace " .. grace)
    local r, w = lasync.open_connection("127.0.0.1", port_of(srv))
    assert.equal("in\n", r:readline())
    return srv, w
  end

  it("exits 1 a while after cancelling a handler that does not end", helper.async(function()
    local srv, w = stubborn(0.2)
    signal(srv, "TERM")
    assert.equal(1, exited(srv, 2))
    w:close()
    local log = slurp(srv.log)
    assert.truthy(log:find("grace period of 0.2 s over: cancelled 1 tasks", 1, true), log)
    assert.truthy(log:find("1 tasks still running 0.2 s after their cancellation: exiting", 1, true), log)
  end))

  it("exits 1 at once on a second SIGTERM while draining", helper.async(function()
    local srv, w = stubborn(10)
    signal(srv, "TERM")
    log_has(srv, "SIGTERM: draining")
    signal(srv, "INT")
    assert.equal(1, exited(srv))
    w:close()
    log_has(srv, "SIGINT while stopping: exiting now\n$")
  end))

  it("reloads the script on SIGHUP (in-process with one worker)", helper.async(function()
    local script = write("version.lua", "return function(r, w) w:write('v1\\n') end")
    local srv = start(quote(script) .. " --listen 127.0.0.1:0")
    local port = port_of(srv)
    assert.equal("v1\n", echo_line(port, ""))
    write("version.lua", "return function(r, w) w:write('v2\\n') end")
    signal(srv, "HUP")
    log_has(srv, "SIGHUP: reloaded")
    assert.equal("v2\n", echo_line(port, ""))
    write("version.lua", "return function(\n")
    signal(srv, "HUP")
    log_has(srv, "SIGHUP: reload failed, keeping the running handler")
    assert.equal("v2\n", echo_line(port, ""))
    stop(srv)
  end))

  -- A free port, for a --listen that names it.
  local function free_port()
    local s = lasync.start_server(function() end, "127.0.0.1", 0)
    local _, port = s:sockname()
    s:close()
    return port
  end

  it("restarts a worker killed by SIGKILL and reloads workers on SIGHUP (--workers 2)",
     helper.async(function()
    local script = write("w.lua", "return function(r, w) w:write('one\\n') end")
    local port = free_port()
    local srv = start(("%s --workers 2 --listen 127.0.0.1:%d"):format(quote(script), port))
    local victim = log_has(srv, "worker 1 started %(pid (%d+)%)")
    poll("two workers", 3, function()
      return select(2, slurp(srv.log):gsub("listening on", "")) == 2
    end)
    assert.equal("one\n", echo_line(port, ""))
    assert(os.execute("kill -KILL " .. victim))
    log_has(srv, "worker 1 %(pid " .. victim .. "%) was killed by SIGKILL")
    log_has(srv, "restarting worker 1 in [%d.]+ s")
    poll("the new worker", 3, function()
      return select(2, slurp(srv.log):gsub("listening on", "")) == 3
    end)
    write("w.lua", "return function(r, w) w:write('two\\n') end")
    signal(srv, "HUP")
    log_has(srv, "SIGHUP: starting 2 new workers")
    log_has(srv, "worker 2 %(pid %d+%) exited with status 0")
    poll("old workers gone", 3, function()
      return select(2, slurp(srv.log):gsub("exited with status 0", "")) == 2
    end)
    for _ = 1, 4 do assert.equal("two\n", echo_line(port, "")) end
    stop(srv)
    assert.truthy(slurp(srv.log):match("SIGTERM: stopping 2 workers\n.*" .. STAMP .. "stopped\n$"))
  end))

  local function count(srv, text)
    return select(2, slurp(srv.log):gsub(text, ""))
  end

  local function worker_pids(srv)
    local list = {}
    for p in slurp(srv.log):gmatch("worker %d started %(pid (%d+)%)") do list[#list + 1] = p end
    return list
  end

  it("SIGHUP: the old workers serve until a new one listens in every slot (--workers 2)",
     helper.async(function()
    local script = write("h.lua", "return function(r, w) w:write('one\\n') end")
    local srv = start(("%s --workers 2 --listen 127.0.0.1:%d"):format(quote(script), free_port()))
    poll("two workers", 3, function() return count(srv, "listening on") == 2 end)
    local port, old = port_of(srv), worker_pids(srv)
    -- New workers that cannot start: the old ones keep serving. One that
    -- dies meanwhile is not restarted: its slot's new worker takes over.
    write("h.lua", "return {handler = function(r, w) w:write('two\\n') end,"
      .. " on_start = function() error('no start') end}")
    signal(srv, "HUP")
    poll("two failed starts", 3, function() return count(srv, "exited with status 1") >= 2 end)
    assert(os.execute("kill -KILL " .. old[1]))
    log_has(srv, "%(pid " .. old[1] .. "%) was killed by SIGKILL")
    for _ = 1, 4 do assert.equal("one\n", echo_line(port, "")) end
    -- New workers slow to start: each waits for a ticket (the file it can
    -- rename away), so that they come one at a time.
    local ticket, taken = tmp("ticket"), tmp("ticket.taken")
    os.remove(ticket)
    write("h.lua", ([[local lasync = require "lasync"
      return {handler = function(r, w) w:write('two\n') end,
        on_start = function() while not os.rename(%q, %q) do lasync.sleep(0.01) end end}]])
      :format(ticket, taken))
    for _ = 1, 4 do assert.equal("one\n", echo_line(port, "")) end
    local listening = count(srv, "listening on")
    write("ticket", "")
    poll("one new worker", 10, function() return count(srv, "listening on") == listening + 1 end)
    lasync.sleep(0.2)
    assert.falsy(slurp(srv.log):find("the new workers listen"))
    write("ticket", "")
    log_has(srv, "the new workers listen: stopping 1 old ones", 10)
    log_has(srv, "%(pid " .. old[2] .. "%) exited with status 0")
    for _ = 1, 4 do assert.equal("two\n", echo_line(port, "")) end
    stop(srv)
  end, 30))

  it("SIGHUP: a worker that died just before is not started twice (--workers 2)",
     helper.async(function()
    local srv = start(("examples/echo.lua --workers 2 --listen 127.0.0.1:%d"):format(free_port()))
    poll("two workers", 3, function() return count(srv, "listening on") == 2 end)
    assert(os.execute("kill -KILL " .. worker_pids(srv)[1]))
    signal(srv, "HUP")  -- while the restart waits for its delay
    log_has(srv, "the new workers listen: stopping")
    lasync.sleep(0.5)  -- longer than the restart's delay
    local after = slurp(srv.log):match("SIGHUP: starting.*")
    assert.equal(2, select(2, after:gsub("started %(pid", "")), after)
    stop(srv)
  end))

  it("SIGHUP during a stop starts no workers", helper.async(function()
    local srv = start(("examples/echo.lua --workers 2 --listen 127.0.0.1:%d"):format(free_port()))
    poll("two workers", 3, function() return count(srv, "listening on") == 2 end)
    -- a client keeps its worker, hence the master, running after SIGTERM
    local r, w = lasync.open_connection("127.0.0.1", port_of(srv))
    w:write("x\n")
    assert.equal("x\n", r:readline())
    signal(srv, "TERM")
    signal(srv, "HUP")
    w:close()
    assert.equal(0, exited(srv))
    assert.falsy(slurp(srv.log):find("SIGHUP: starting"))
  end))

  local function listening_ports(srv)
    local ports, n = {}, 0
    for p in slurp(srv.log):gmatch("listening on 127%.0%.0%.1:(%d+)") do
      ports[tonumber(p)], n = true, n + 1
    end
    return ports, n
  end

  it("--workers 2 --listen HOST:0: the master picks one port for every worker",
     helper.async(function()
    local srv = start("examples/echo.lua --workers 2 --listen 127.0.0.1:0")
    poll("two workers", 3, function() return select(2, listening_ports(srv)) == 2 end)
    local ports = listening_ports(srv)
    local port = next(ports)
    assert.same({[port] = true}, ports)
    log_has(srv, "127%.0%.0%.1:0: the workers listen on port " .. port .. "\n")
    assert(os.execute("kill -KILL " .. log_has(srv, "worker 1 started %(pid (%d+)%)")))
    poll("the new worker", 3, function() return select(2, listening_ports(srv)) == 3 end)
    assert.same({[port] = true}, (listening_ports(srv)))
    for i = 1, 4 do assert.equal(i .. "\n", echo_line(port, i .. "\n")) end
    stop(srv)
  end))

  -- The master loads the script too, before it forks: the threads its
  -- top level started there do not exist in the workers.
  it("runs to_thread in its workers, and at the top level of the script (--workers 2)",
     helper.async(function()
    local script = write("upper.lua", [[
local lasync = require "lasync"
local prefix = lasync.to_thread(function() return "up: " end)
return function(reader, writer)
  for line in reader:lines() do
    writer:write(prefix .. lasync.to_thread(function(s) return s:upper() end, line) .. "\n")
  end
end
]])
    local srv = start(quote(script) .. " --workers 2 --listen 127.0.0.1:0")
    poll("two workers", 3, function() return select(2, listening_ports(srv)) == 2 end)
    local port = next((listening_ports(srv)))
    for i = 1, 4 do assert.equal("up: ABC" .. i .. "\n", echo_line(port, "abc" .. i .. "\n")) end
    stop(srv)
  end))

  it("--workers 2 exits 1 at start when the address is in use", helper.async(function()
    local busy = lasync.start_server(function() end, "127.0.0.1", 0)
    local _, port = busy:sockname()
    local srv = start(("examples/echo.lua --workers 2 --listen 127.0.0.1:%d"):format(port), false)
    local code = exited(srv)
    busy:close()
    assert.equal(1, code)
    local log = slurp(srv.log)
    assert.truthy(log:find(("cannot listen on 127.0.0.1:%d: "):format(port), 1, true), log)
    assert.falsy(log:find("started"), log)
  end))

  -- Whether process p runs (a zombie does not).
  local function alive(p)
    local stat = slurp("/proc/" .. p .. "/stat")
    return stat ~= "" and not stat:match("^%d+ %b() Z")
  end

  it("workers exit when the master is killed by SIGKILL", helper.async(function()
    local srv = start("examples/echo.lua --workers 2 --listen 127.0.0.1:0")
    -- A worker may log its listen line before the master logs its start.
    local workers = poll("two workers", 3, function()
      local list = worker_pids(srv)
      return #list == 2 and select(2, listening_ports(srv)) == 2 and list
    end)
    signal(srv, "KILL")
    poll("the workers' end", 3, function() return not alive(workers[1]) and not alive(workers[2]) end)
    assert.equal(137, exited(srv))
  end))

  it("--max-connections 1: a second client is accepted once the first leaves",
     helper.async(function()
    local srv = start("examples/echo.lua --listen 127.0.0.1:0 --max-connections 1")
    local port = port_of(srv)
    local r1, w1 = lasync.open_connection("127.0.0.1", port)
    w1:write("a\n")
    assert.equal("a\n", r1:readline())
    local r2, w2 = lasync.open_connection("127.0.0.1", port)  -- in the backlog
    w2:write("b\n")
    local err = helper.error_of(lasync.wait_for, function() return r2:readline() end, 0.2)
    assert.truthy(lasync.TimeoutError:is(err))
    w1:close()
    assert.equal("b\n", r2:readline())
    w2:close()
    stop(srv)
  end))

  it("--idle-timeout closes a silent client, not a talking one", helper.async(function()
    -- The timeout leaves room for a loaded machine's pauses: r2 talks
    -- every 0.05 s, and must never be taken for silent.
    local srv = start("examples/echo.lua --listen 127.0.0.1:0 --idle-timeout 0.5")
    local port = port_of(srv)
    local r1, w1 = lasync.open_connection("127.0.0.1", port)
    local r2, w2 = lasync.open_connection("127.0.0.1", port)
    local earlier = helper.after(0.45)
    local silent, i = lasync.spawn(r1.read, r1, 10), 0
    repeat  -- until r1 is closed (or the spec's deadline)
      i = i + 1
      lasync.sleep(0.05)
      w2:write(i .. "\n")
      assert.equal(i .. "\n", r2:readline())
    until silent:done()
    assert.equal("", silent:result())
    assert.is_true(earlier:is_set())  -- it waited for the idle timeout (0.5 s)
    w1:close()
    w2:write("still\n")
    assert.equal("still\n", r2:readline())
    w2:close()
    log_has(srv, "closing a connection idle for 0.5 s")
    stop(srv)
  end))

  it("--idle-timeout spares a client that sends slowly into a long read",
     helper.async(function()
    local script = write("readall.lua", [[
      return function(r, w)
        local all = r:read()  -- to the end of input
        w:write("got " .. #all .. "\n")
      end]])
    local srv = start(quote(script) .. " --listen 127.0.0.1:0 --idle-timeout 0.5")
    local r, w = lasync.open_connection("127.0.0.1", port_of(srv))
    for _ = 1, 8 do  -- 0.8 s in all, never 0.5 s silent
      w:write("x")
      lasync.sleep(0.1)
    end
    w:write_eof()
    assert.equal("got 8\n", r:readline())
    w:close()
    stop(srv)
  end))

  it("--idle-timeout spares a handler that stopped reading after a read raised",
     helper.async(function()
    local script = write("gaveup.lua", [[
      local lasync = require "lasync"
      return function(r, w)
        pcall(lasync.timeout, 0.05, r.readline, r)  -- a read that gives up
        lasync.sleep(0.4)  -- not reading: not idle
        w:write("done\n")
      end]])
    local srv = start(quote(script) .. " --listen 127.0.0.1:0 --idle-timeout 0.2")
    local r, w = lasync.open_connection("127.0.0.1", port_of(srv))
    assert.equal("done\n", r:readline())
    w:close()
    stop(srv)
  end))

  it("goes on serving when its log pipe closes (SIGPIPE ignored)", helper.async(function()
    local srv, path = {log = tmp("piped"), status = tmp("piped-status")}, tmp("piped-sock")
    os.remove(srv.status)
    -- head exits after the first line: later log lines meet a closed pipe
    assert(os.execute(("cd %s && ((lasync serve examples/echo.lua --listen unix:%s "
      .. "--idle-timeout 0.05 2>&1 </dev/null; echo $? >%s) | head -1 >%s) &")
      :format(quote(ROOT), quote(path), srv.status, srv.log)))
    running[srv] = true
    srv.pid = log_has(srv, "lasync%[(%d+)%]")
    local r = poll("listening", 3, function()
      local ok, reader = pcall(lasync.open_unix_connection, path)
      return ok and reader
    end)
    assert.equal("", r:read())  -- closed as idle: that was logged
    local r2, w2 = lasync.open_unix_connection(path)
    w2:write("still serving\n")
    assert.equal("still serving\n", r2:readline())
    w2:close()
    assert.is_true(alive(srv.pid))
    stop(srv)
  end))

  it("listens on unix:PATH", helper.async(function()
    local path = tmp("sock")
    local srv = start(("examples/echo.lua --listen unix:%s"):format(quote(path)))
    log_has(srv, "listening on unix:" .. path:gsub("%p", "%%%0"))
    local r, w = lasync.open_unix_connection(path)
    w:write("over unix\n")
    assert.equal("over unix\n", r:readline())
    w:close()
    stop(srv)
    assert.is_nil(io.open(path))
  end))

  it("serves TLS with --tls-cert and --tls-key, and refuses a bad certificate", helper.async(function()
    local dir = ROOT .. "spec/fixtures/tls/"
    local tls = (" --tls-cert %s --tls-key %s"):format(quote(dir .. "server.pem"), quote(dir .. "server.key"))
    local srv = start("examples/echo.lua --listen 127.0.0.1:0" .. tls)
    local port = tonumber(log_has(srv, "listening on 127%.0%.0%.1:(%d+) %(TLS%)"))
    local r, w = lasync.open_connection("127.0.0.1", port, {ssl = {cafile = dir .. "ca.pem"}})
    w:write("secure\n")
    assert.equal("secure\n", r:readline())
    w:close()
    stop(srv)
    for _, workers in ipairs {"1", "2"} do
      local out, code = run_serve("examples/echo.lua --listen 127.0.0.1:0 --workers " .. workers
        .. " --tls-cert " .. quote(dir .. "ca.pem"))
      assert.equal(1, code)
      assert.truthy(out:find("cannot load the TLS certificate: cannot load keyfile", 1, true), out)
    end
  end))

  it("--idle-timeout bounds the TLS handshake of a silent client", helper.async(function()
    local dir = ROOT .. "spec/fixtures/tls/"
    local srv = start(("examples/echo.lua --listen 127.0.0.1:0 --idle-timeout 0.2 --tls-cert %s --tls-key %s")
      :format(quote(dir .. "server.pem"), quote(dir .. "server.key")))
    local port = tonumber(log_has(srv, "listening on 127%.0%.0%.1:(%d+) %(TLS%)"))
    local r, w = lasync.open_connection("127.0.0.1", port)  -- plain TCP: no ClientHello
    local earlier = helper.after(0.15)
    assert.equal("", lasync.wait_for(function() return r:read(10) end, 3))
    assert.is_true(earlier:is_set())  -- it waited for the idle timeout (0.2 s)
    w:close()
    stop(srv)
  end))

  it("relays chat lines between clients (examples/chat.lua)", helper.async(function()
    local srv = start("examples/chat.lua --listen 127.0.0.1:0")
    local port = port_of(srv)
    local ra, wa = lasync.open_connection("127.0.0.1", port)
    assert.equal("welcome, guest1: 1 connected\n", ra:readline())
    local rb, wb = lasync.open_connection("127.0.0.1", port)
    assert.equal("welcome, guest2: 2 connected\n", rb:readline())
    assert.equal("guest2 joined\n", ra:readline())
    wb:write("hi there\r\n")
    assert.equal("guest2: hi there\n", ra:readline())
    wa:write("hello\n")
    assert.equal("guest1: hello\n", rb:readline())
    wb:close()
    assert.equal("guest2 left\n", ra:readline())
    wa:close()
    stop(srv)
  end))

  it("refuses to serve the chat with workers: exit 1 (examples/chat.lua)", function()
    local out, code = run_serve("examples/chat.lua --workers 2 --listen 127.0.0.1:0")
    assert.equal(1, code)
    assert.truthy(out:find("on_start failed: the chat keeps its clients in one process: "
      .. "serve it without --workers (with 2 workers it would be 2 separate chats)", 1, true), out)
    assert.truthy(out:find("did not start: stopping", 1, true), out)
  end)

  -- A script whose on_start logs what it was given and whether its
  -- on_stop gets the same.
  local function hooks_script()
    return write("hooks.lua", [[
      return {
        handler = function() end,
        on_start = function(...) io.stderr:write(("on_start %s\n"):format(table.concat({...}, "/"))) end,
        on_stop = function(...) io.stderr:write(("on_stop %s\n"):format(table.concat({...}, "/"))) end,
      }]])
  end

  it("passes on_start and on_stop 1, 1 without workers", helper.async(function()
    local srv = start(quote(hooks_script()) .. " --listen 127.0.0.1:0")
    stop(srv)
    local log = slurp(srv.log)
    assert.truthy(log:find("\non_start 1/1\n"), log)
    assert.truthy(log:find("\non_stop 1/1\n"), log)
  end))

  it("passes on_start the worker's index and the count (--workers 2)", helper.async(function()
    local srv = start(quote(hooks_script()) .. " --workers 2 --listen 127.0.0.1:0")
    poll("two workers", 3, function() return count(srv, "listening on") == 2 end)
    stop(srv)
    local log = slurp(srv.log)
    for _, seen in ipairs {"on_start 1/2", "on_start 2/2", "on_stop 1/2", "on_stop 2/2"} do
      assert.truthy(log:find("\n" .. seen .. "\n"), log)
    end
  end))

  it("logs a handler error with its traceback and goes on serving", helper.async(function()
    local script = write("boom.lua", [[
      return function(r, w)
        local line = r:readline()
        if line == "boom\n" then error("handler exploded") end
        if line == "table\n" then error({message = "a table's message"}) end
        w:write(line)
      end]])
    local srv = start(quote(script) .. " --listen 127.0.0.1:0")
    local port = port_of(srv)
    -- Each error names the client, and a table error shows its message.
    for text, shown in pairs {["boom\n"] = "handler exploded", ["table\n"] = "a table's message"} do
      local r, w = lasync.open_connection("127.0.0.1", port)
      local _, client_port = w:get_extra_info("sockname")
      w:write(text)
      assert.equal("", r:read(10))
      w:close()
      local line = log_has(srv, STAMP .. "(Unhandled error in connection handler "
        .. "%(client 127%.0%.0%.1:" .. client_port .. "%): [^\n]*)")
      assert.truthy(line:find(shown, 1, true), line)
    end
    log_has(srv, "stack traceback:\n")
    assert.falsy(slurp(srv.log):find("table: 0x", 1, true))
    assert.equal("ok\n", echo_line(port, "ok\n"))
    stop(srv)
  end))
end)
