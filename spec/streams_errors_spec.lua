-- Stream failures (docs/reference.md §8): refused connections, resets while reading
-- and writing, handlers that raise, and misuse (bad arguments).
local lasync = require "lasync"
local helper = require "helper"
local util = require "streams_util"

local catch = helper.error_of

-- A port where nothing listens (a server's, once closed).
local function free_port()
  local srv, port = util.server(util.echo)
  util.stop(srv)
  return port
end

describe("a connection error", function()
  it("is ConnectionRefusedError ECONNREFUSED when nothing listens", helper.async(function()
    local port = free_port()
    local err = catch(lasync.open_connection, "127.0.0.1", port)
    assert.is_true(lasync.ConnectionRefusedError:is(err), tostring(err))
    assert.is_true(lasync.ConnectionError:is(err))
    assert.is_true(lasync.OSError:is(err))
    assert.are.equal("ECONNREFUSED", err.code)
    assert.are.equal("integer", math.type(err.errno))
    assert.are.equal(("connect to 127.0.0.1:%d: Connection refused"):format(port), err.message)
  end))

  it("is ConnectionResetError ECONNRESET when the peer resets during a read", helper.async(function()
    local outcome, wrote = lasync.Future(), lasync.Event()
    local srv, port = util.server(function(r, w)
      w:write("unread")  -- straight into the socket: at the client already
      wrote:set()
      outcome:set_result(pcall(r.read, r, 10))
    end)
    -- limit 1: the stream reads one byte ahead, the rest of "unread"
    -- stays in the socket, so closing it sends a reset
    local r = lasync.open_connection("127.0.0.1", port, {limit = 1})
    wrote:wait()
    r:close()
    local ok, err = outcome:await()
    assert.is_false(ok)
    assert.is_true(lasync.ConnectionResetError:is(err), tostring(err))
    assert.are.equal("ECONNRESET", err.code)
    assert.are.equal("ConnectionResetError: Connection reset by peer", tostring(err))
    util.stop(srv)
  end))

  it("is raised by drain when the peer is gone during writes", helper.async(function()
    local outcome = lasync.Future()
    local srv, port = util.server(function(_, w)
      local chunk = ("w"):rep(65536)
      outcome:set_result(pcall(function()
        for _ = 1, 10000 do
          w:write(chunk)
          w:drain()
        end
      end))
    end)
    local r = lasync.open_connection("127.0.0.1", port)
    r:readexactly(10)
    r:close()  -- with unread data: a reset
    local ok, err = outcome:await()
    assert.is_false(ok)
    assert.is_true(lasync.ConnectionError:is(err), tostring(err))
    assert.is_truthy(({EPIPE = true, ECONNRESET = true})[err.code], err.code)
    util.stop(srv)
  end))

  it("is raised again by later reads and drains", helper.async(function()
    local c, s, done = util.pair {limit = 1}
    s:write("xy")
    lasync.sleep(0.01)
    c:close()  -- resets: "y" was not read
    local first = catch(s.read, s)
    assert.are.equal("ECONNRESET", first.code)
    assert.are.equal("ECONNRESET", catch(s.readline, s).code)
    assert.are.equal("ECONNRESET", catch(s.drain, s).code)
    s:write("dropped")
    done()
  end))

  it("closes the stream: is_closing, and wait_closed raises it", helper.async(function()
    local c, s, done = util.pair {limit = 1}
    local early = lasync.spawn(function() return pcall(s.wait_closed, s) end)
    lasync.sleep(0)  -- it waits from before the reset
    s:write("xy")
    lasync.sleep(0.01)
    c:close()  -- resets: "y" was not read
    local ok, err = early:await()  -- woken by the reset alone
    assert.is_false(ok)
    assert.are.equal("ECONNRESET", err.code)
    assert.is_true(s:is_closing())
    assert.is_nil(s:get_extra_info("fd"))  -- the socket is gone
    assert.are.equal("ECONNRESET", catch(s.wait_closed, s).code)
    s:close()  -- changes nothing
    assert.are.equal("ECONNRESET", catch(s.wait_closed, s).code)
    done()
  end))
end)

describe("a handler that raises", function()
  it("is reported and costs its own connection only", helper.async(function()
    local reports = helper.reports()
    local srv, port = util.server(function(r, w)
      for line in r:lines() do
        if line == "boom" then error("handler failed") end
        w:write(line .. "\n")
      end
    end)
    local r1, w1 = lasync.open_connection("127.0.0.1", port)
    local r2, w2 = lasync.open_connection("127.0.0.1", port)
    w1:write("boom\n")
    assert.are.equal("", r1:read())  -- closed by the server
    w2:write("still here\n")
    assert.are.equal("still here\n", r2:readline())
    local r3, w3 = lasync.open_connection("127.0.0.1", port)
    w3:write("new one\n")
    assert.are.equal("new one\n", r3:readline())
    assert.are.equal(1, #reports)
    local ctx = reports[1]
    assert.are.equal("Unhandled error in connection handler", ctx.message)
    assert.matches("handler failed", ctx.exception)
    assert.matches("stack traceback", ctx.traceback)
    assert.is_true(lasync.is_task(ctx.task))
    for _, w in ipairs {w1, w2, w3} do w:close() end
    util.stop(srv)
  end))

  it("is not reported when it is cancelled", helper.async(function()
    local reports = helper.reports()
    local handler = lasync.Future()
    local srv, port = util.server(function(r)
      handler:set_result(lasync.current_task())
      r:read()
    end)
    local _, w = lasync.open_connection("127.0.0.1", port)
    local t = handler:await()
    t:cancel()
    util.stop(srv)
    assert.is_true(t:cancelled())
    assert.are.equal(0, #reports)
    assert.are.equal("", w:read())
    w:close()
  end))
end)

describe("a server out of file descriptors", function()
  -- In a child process with few descriptors: clients connect until none
  -- is left; the server, unable to accept the last ones, must not spin,
  -- and serves them once descriptors are freed.
  local script = [[
    local lasync = require "lasync"
    local reports = {}
    lasync.run(function()
      lasync.get_running_loop():set_exception_handler(function(_, ctx)
        reports[#reports + 1] = ctx.message .. " / " .. tostring(ctx.exception)
      end)
      local srv = lasync.start_server(function(r, w)
        for line in r:lines() do w:write(line .. "\n") end
      end, "127.0.0.1", 0)
      local _, port = srv:sockname()
      local clients = {}
      while true do
        local ok, r = pcall(lasync.open_connection, "127.0.0.1", port)
        if not ok then print("client: " .. r.code) break end
        clients[#clients + 1] = r
      end
      local cpu = os.clock()
      lasync.sleep(0.3)
      print(("cpu: %s"):format(os.clock() - cpu < 0.1))
      for i = 1, 4 do clients[i]:close() end
      local last = clients[#clients]
      last:write("served\n")
      print("last: " .. last:readline())
      for _, c in ipairs(clients) do c:close() end
      srv:close()
      srv:wait_closed()
      print("reports: " .. table.concat(reports, "; "))
    end)
  ]]

  it("pauses accepting, reports it once, and accepts again later", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(script)
    f:close()
    local p = assert(io.popen(("sh -c 'ulimit -n 32 && exec %s %s' 2>&1")
      :format(os.getenv("LASYNC_LUA") or "lua5.4", path)))
    local out = p:read("a")
    p:close()
    os.remove(path)
    assert.matches("client: EMFILE\ncpu: true\nlast: served\n", out)
    assert.matches("reports: Server could not accept a connection; accepting again "
      .. "in 0%.1 s / OSError: accept: Too many open files\n$", out)
  end)
end)

describe("misuse", function()
  local function raises(pattern, fn, ...)
    local err = catch(fn, ...)
    assert.matches(pattern, tostring(err))
  end

  it("names the bad argument of open_connection", helper.async(function()
    raises("bad argument #1 to 'open_connection' %(host %(string%) expected, got number%)",
      lasync.open_connection, 1, 80)
    raises("bad argument #1 to 'open_connection' %(host must not be empty%)",
      lasync.open_connection, "", 80)
    raises("bad argument #1 to 'open_connection' %(host must not contain \\0%)",
      lasync.open_connection, "127.0.0.1\0x", 80)
    raises("bad argument #2 to 'open_connection' %(port %(integer from 0 to 65535%) expected, got 70000%)",
      lasync.open_connection, "127.0.0.1", 70000)
    raises("bad argument #2 to 'open_connection' %(port .* got string%)",
      lasync.open_connection, "127.0.0.1", "80")
    raises("bad argument #3 to 'open_connection' %(table of options or nil expected, got string%)",
      lasync.open_connection, "127.0.0.1", 80, "x")
    raises("bad argument #3 to 'open_connection' %(unknown option 'limt'%)",
      lasync.open_connection, "127.0.0.1", 80, {limt = 1})
    raises("bad argument #3 to 'open_connection' %(opts.limit must be a positive integer, got 0%)",
      lasync.open_connection, "127.0.0.1", 80, {limit = 0})
    raises("bad argument #3 to 'open_connection' %(opts.local_addr must be {host, port}, got string%)",
      lasync.open_connection, "127.0.0.1", 80, {local_addr = "x"})
    raises("open_connection: opts.ssl: true, a table of TLS settings or an SSL context expected, got number",
      lasync.open_connection, "127.0.0.1", 80, {ssl = 42})
    raises("bad argument #1 to 'open_unix_connection' %(path %(string%) expected, got nil%)",
      lasync.open_unix_connection)
  end))

  it("names the bad argument of start_server", helper.async(function()
    raises("bad argument #1 to 'start_server' %(handler function expected, got nil%)",
      lasync.start_server, nil, "127.0.0.1", 0)
    raises("bad argument #2 to 'start_server' %(host %(string, list or nil%) expected, got number%)",
      lasync.start_server, util.echo, 7, 0)
    raises("bad argument #2 to 'start_server' %(host must not contain \\0%)",
      lasync.start_server, util.echo, "1.2.3.4\0x", 0)
    raises("bad argument #4 to 'start_server' %(opts.backlog must be a positive integer %(at most 65535%), got %-1%)",
      lasync.start_server, util.echo, "127.0.0.1", 0, {backlog = -1})
    raises("bad argument #4 to 'start_server' %(opts.backlog must be .*, got 10000000000%.0%)",
      lasync.start_server, util.echo, "127.0.0.1", 0, {backlog = 1e10})
    raises("bad argument #4 to 'start_server' %(opts.reuse_port must be a boolean, got number%)",
      lasync.start_server, util.echo, "127.0.0.1", 0, {reuse_port = 1})
    raises("start_server: opts.ssl: a server needs a certificate %(certfile%)",
      lasync.start_server, util.echo, "127.0.0.1", 0, {ssl = {}})
    raises("bad argument #1 to 'start_unix_server' %(handler function expected, got string%)",
      lasync.start_unix_server, "x", "/tmp/x")
    raises("bad argument #2 to 'unix_server' %(path must have 1 to 107 bytes%)",
      lasync.start_unix_server, util.echo, ("p"):rep(200))
  end))

  -- Names go through lasync.getaddrinfo: with a nameserver that answers
  -- (as here) an unknown name fails with an EAI code; with none reachable
  -- the lookup would only time out, which the 2 s bound turns into a
  -- TimeoutError instead of a hang.
  it("raises OSError with an EAI code for a host name it cannot resolve", helper.async(function()
    local err = catch(lasync.wait_for, function()
      return lasync.open_connection("no.such.host.invalid", 80)
    end, 2)
    if not lasync.TimeoutError:is(err) then
      assert.is_true(lasync.OSError:is(err), tostring(err))
      assert.matches("^EAI_", err.code)
    end
  end))

  it("connects to a name from /etc/hosts", helper.async(function()
    local srv = lasync.start_server(function(r, w)
      w:write(r:readline())
      w:close()
    end, "127.0.0.1", 0)
    local _, port = srv:sockname()
    local r, w = lasync.open_connection("localhost", port)
    w:write("via localhost\n")
    assert.are.equal("via localhost\n", r:readline())
    w:close()
    srv:close()
    srv:wait_closed()
  end))

  it("needs a task to connect", helper.async(function()
    local err
    lasync.get_running_loop():call_soon(function()
      err = catch(lasync.open_connection, "127.0.0.1", 1)
    end)
    helper.settle()
    assert.matches("open_connection called outside a task", err)
  end))

  it("needs a running loop to serve", function()
    raises("no running event loop", lasync.start_server, util.echo, "127.0.0.1", 0)
  end)

  it("counts bytes received only of a stream", function()
    assert.matches("stream expected, got number",
      tostring(catch(require("lasync.core")._stream_received, 1)))
  end)

  it("names the bad argument of stream methods", helper.async(function()
    local c, s, done = util.pair()
    raises("bad argument #1 to 'write' %(string expected, got number%)",
      function() s:write(42) end)
    raises("bad argument #1 to 'writelines' %(string expected at index 2, got boolean%)",
      function() s:writelines {"a", true} end)
    raises("bad argument #1 to 'read' %(number has no integer representation%)",
      function() s:read(0.5) end)
    raises("stream expected, got table", s.read, {})
    raises("start_tls: server_hostname is needed to check the server's certificate",
      function() c:start_tls {} end)
    done()
  end))
end)
