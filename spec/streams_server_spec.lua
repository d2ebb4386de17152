-- Servers and connections (docs/reference.md §8): echo of 8 MiB, 200 clients at once,
-- half-close, the Server methods, Unix sockets, writer methods and
-- get_extra_info.
local lasync = require "lasync"
local helper = require "helper"
local util = require "streams_util"

local catch = helper.error_of

-- 8 MiB in which every 64 KiB block differs.
local function big_data()
  local blocks = {}
  for i = 1, 128 do
    blocks[i] = ("%08d"):format(i) .. string.char(i % 256):rep(65536 - 8)
  end
  return table.concat(blocks)
end

describe("an echo server", function()
  it("sends back 8 MiB intact to a client writing with drain", helper.async(function()
    local srv, port = util.server(util.echo)
    local r, w = lasync.open_connection("127.0.0.1", port)
    local data = big_data()
    local writer = lasync.spawn(function()
      for i = 1, #data, 100000 do
        w:write(data:sub(i, i + 99999))
        w:drain()
      end
      w:write_eof()
    end)
    local got = r:read()
    writer:await()
    assert.are.equal(#data, #got)
    assert.is_true(got == data)
    w:close()
    util.stop(srv)
  end, 10))

  it("serves 200 clients at once", helper.async(function()
    local srv, port = util.server(function(r, w)
      for line in r:lines() do w:write(line .. "!\n") end
    end, {backlog = 512})
    local clients = {}
    for i = 1, 200 do
      clients[i] = lasync.spawn(function()
        local r, w = lasync.open_connection("127.0.0.1", port)
        local got = {}
        for j = 1, 3 do
          w:write(("%d.%d\n"):format(i, j))
          got[j] = r:readline()
        end
        w:close()
        w:wait_closed()
        return table.concat(got)
      end)
    end
    for i, t in ipairs(clients) do
      assert.are.equal(("%d.1!\n%d.2!\n%d.3!\n"):format(i, i, i), t:await())
    end
    util.stop(srv)
  end, 10))

  it("lets a half-closed peer still write back", helper.async(function()
    local srv, port = util.server(function(r, w)
      local all = r:read()       -- until the client's write_eof
      assert(r:at_eof())
      w:write("got " .. #all)
    end)
    local r, w = lasync.open_connection("127.0.0.1", port)
    assert.is_true(w:can_write_eof())
    w:write("12345")
    w:write_eof()
    assert.matches("cannot write after write_eof", catch(function() w:write("x") end))
    assert.are.equal("got 5", r:read())
    assert.is_true(r:at_eof())
    w:close()
    util.stop(srv)
  end))
end)

describe("a Server", function()
  it("reports its address and whether it serves", helper.async(function()
    local srv, port = util.server(util.echo)
    local host, p = srv:sockname()
    assert.are.equal("127.0.0.1", host)
    assert.are.equal(port, p)
    assert.is_true(port > 0)
    assert.is_true(srv:is_serving())
    srv:close()
    assert.is_false(srv:is_serving())
    assert.is_nil(srv:sockname())
    srv:close()  -- idempotent
    srv:wait_closed()
    local err = catch(lasync.open_connection, "127.0.0.1", port)
    assert.are.equal("ECONNREFUSED", err.code)
  end))

  it("waits in wait_closed until every handler has finished", helper.async(function()
    local release, read = lasync.Event(), lasync.Event()
    local srv, port = util.server(function(r)
      r:readline()
      read:set()
      release:wait()
    end)
    local _, w = lasync.open_connection("127.0.0.1", port)
    w:write("hi\n")
    read:wait()
    srv:close()
    local waiter = lasync.spawn(srv.wait_closed, srv)
    lasync.sleep(0.01)
    assert.is_false(waiter:done())
    release:set()
    waiter:await()
    w:close()
  end))

  -- A connection task cancelled as soon as it could be seen used to have
  -- never run (cancelled before its first step): its socket stayed open
  -- and wait_closed() hung. It takes its first step when accepted.
  it("closes a connection whose task is cancelled at once", helper.async(function()
    local before = {}
    for _, t in ipairs(lasync.all_tasks()) do before[t] = true end
    local srv, port = util.server(function(r) r:read() end)
    local r = lasync.open_connection("127.0.0.1", port)
    local conn
    while not conn do
      for _, t in ipairs(lasync.all_tasks()) do
        if not before[t] and t ~= lasync.current_task() then conn = t end
      end
      if not conn then lasync.sleep(0) end
    end
    conn:cancel()
    assert.are.equal("", lasync.wait_for(function() return r:read() end, 1))
    srv:close()
    lasync.wait_for(function() srv:wait_closed() end, 1)
    assert.is_true(conn:cancelled())
    r:close()
  end))

  it("ends the handlers' input with close_clients", helper.async(function()
    local ended, started, all_in = {}, 0, lasync.Event()
    local srv, port = util.server(function(r)
      local data = r:readexactly(2)
      started = started + 1
      if started == 3 then all_in:set() end
      data = data .. r:read()  -- to the end of input
      ended[#ended + 1] = data
    end)
    local conns = {}
    for i = 1, 3 do
      local _, w = lasync.open_connection("127.0.0.1", port)
      w:write("c" .. i)
      conns[i] = w
    end
    all_in:wait()
    srv:close()
    srv:close_clients()
    srv:wait_closed()
    table.sort(ended)
    assert.are.same({"c1", "c2", "c3"}, ended)
    for _, w in ipairs(conns) do
      assert.are.equal("", w:read())
      w:close()
    end
  end))

  it("drops what a handler had buffered with abort_clients", helper.async(function()
    local wrote = lasync.Event()
    local srv, port = util.server(function(r, w)
      w:write(("x"):rep(8 * 1024 * 1024))  -- far more than the socket takes
      wrote:set()
      r:read()
    end)
    local r, w = lasync.open_connection("127.0.0.1", port)
    wrote:wait()
    srv:abort_clients()
    util.stop(srv)
    local got = 0
    while true do
      local ok, data = pcall(r.read, r, 65536)
      if not ok or data == "" then break end
      got = got + #data
    end
    assert.is_true(got < 8 * 1024 * 1024)
    w:close()
  end))

  it("returns from serve_forever once closed, and closes when it is cancelled", helper.async(function()
    local srv = util.server(util.echo)
    local t = lasync.spawn(srv.serve_forever, srv)
    helper.settle()
    assert.matches("already running", catch(srv.serve_forever, srv))
    srv:close()
    t:await()
    assert.matches("the server is closed", catch(srv.serve_forever, srv))
    local srv2 = util.server(util.echo)
    t = lasync.spawn(srv2.serve_forever, srv2)
    helper.settle()
    t:cancel()
    assert.is_true(helper.is_cancelled(catch(t.await, t)))
    assert.is_false(srv2:is_serving())
    srv2:wait_closed()
  end))

  it("refuses a port in use", helper.async(function()
    local srv, port = util.server(util.echo)
    local err = catch(lasync.start_server, util.echo, "127.0.0.1", port)
    assert.is_true(util.is("OSError", err), tostring(err))
    assert.are.equal("EADDRINUSE", err.code)
    assert.matches("listen on 127.0.0.1:%d+: Address already in use", err.message)
    util.stop(srv)
  end))

  -- Whether this machine has IPv6 on its loopback (::1).
  local function has_ipv6()
    local f = io.open("/proc/net/if_inet6")
    local text = f and f:read("a") or ""
    if f then f:close() end
    return text:find("^0+1 ") ~= nil or text:find("\n0+1 ") ~= nil
  end

  local function say_hi(_, w) w:write("hi\n") end

  local function hi_from(host, port)
    local r, w = lasync.open_connection(host, port)
    local line = r:readline()
    w:close()
    return line
  end

  for _, host in ipairs {"nil", '""'} do
    it("listens on every interface, IPv4 and IPv6, for host " .. host, helper.async(function()
      local srv = lasync.start_server(say_hi, load("return " .. host)(), 0)
      local bound, port = srv:sockname()
      assert.are.equal("0.0.0.0", bound)
      assert.are.equal("hi\n", hi_from("127.0.0.1", port))
      local all = {{host = "0.0.0.0", port = port}}
      if has_ipv6() then
        assert.are.equal("hi\n", hi_from("::1", port))
        all[2] = {host = "::", port = port}
      end
      assert.are.same(all, srv:socknames())
      util.stop(srv)
      assert.are.same({}, srv:socknames())
    end))
  end

  it("listens on each address of a list, on one free port", helper.async(function()
    local hosts = {"127.0.0.1", "127.0.0.2", "127.0.0.1"}  -- twice: once
    if has_ipv6() then hosts[4] = "::1" end
    local srv = lasync.start_server(say_hi, hosts, 0)
    local bound, port = srv:sockname()
    assert.are.equal("127.0.0.1", bound)
    for _, host in ipairs(hosts) do assert.are.equal("hi\n", hi_from(host, port)) end
    srv:close()
    for _, host in ipairs(hosts) do
      assert.are.equal("ECONNREFUSED", catch(lasync.open_connection, host, port).code)
    end
    srv:wait_closed()
  end))

  it("fails whole when one address cannot be listened on, naming it", helper.async(function()
    local busy = lasync.start_server(say_hi, "127.0.0.2", 0)
    local _, port = busy:sockname()
    local err = catch(lasync.start_server, say_hi, {"127.0.0.1", "127.0.0.2"}, port)
    assert.are.equal("EADDRINUSE", err.code)
    assert.are.equal(("listen on 127.0.0.2:%d: Address already in use"):format(port), err.message)
    local again = lasync.start_server(say_hi, "127.0.0.1", port)  -- the first was let go
    util.stop(again)
    util.stop(busy)
    err = catch(lasync.start_server, say_hi, {"127.0.0.1", "192.0.2.1"}, 0)  -- not ours
    assert.are.equal("EADDRNOTAVAIL", err.code)
    assert.matches("^listen on 192%.0%.2%.1:%d+: ", err.message)
  end))

  it("refuses a bad list of hosts", helper.async(function()
    local function bad(host, text)
      local err = catch(lasync.start_server, say_hi, host, 0)
      assert.matches("bad argument #2 to 'start_server' %(" .. text, tostring(err))
    end
    bad({}, "host list must not be empty")
    bad({"127.0.0.1", 5}, "list of host strings expected, got number")
    bad({"127.0.0.1", ""}, "a host in the list is empty")
    bad({"127.0.0.1", "a\0b"}, "host must not contain")
    bad(true, "host %(string, list or nil%) expected, got boolean")
    local nine = {}
    for i = 1, 9 do nine[i] = "127.0.0." .. i end
    bad(nine, "more than 8 addresses to listen on")
    local core = require "lasync.core"  -- what start_server hands on
    assert.matches("1 to 8 hosts expected", tostring(catch(core.tcp_server, say_hi, {}, 0)))
    assert.matches("numeric IPv4 or IPv6 addresses expected",
      tostring(catch(core.tcp_server, say_hi, {"127.0.0.1", "localhost"}, 0)))
  end))

  -- The kernel picks port 0's port: whether another address has it taken
  -- is shown here by a core.tcp_server that says so the first times.
  it("tries a new free port when another address has the first one's taken",
     helper.async(function()
    local core = require "lasync.core"
    local real, calls = core.tcp_server, 0
    local function taken_for(n)
      calls = 0
      core.tcp_server = function(...)
        calls = calls + 1
        if calls <= n then error(lasync.OSError("listen: taken", {code = "EADDRINUSE"}), 0) end
        return real(...)
      end
    end
    local ok, err = pcall(function()
      taken_for(2)
      util.stop(lasync.start_server(say_hi, {"127.0.0.1", "127.0.0.2"}, 0))
      assert.are.equal(3, calls)
      taken_for(5)  -- gives up after 5 tries
      assert.are.equal("EADDRINUSE", catch(lasync.start_server, say_hi, {"127.0.0.1", "127.0.0.2"}, 0).code)
      assert.are.equal(5, calls)
      taken_for(1)  -- a port asked for is not changed: no retry
      catch(lasync.start_server, say_hi, {"127.0.0.1", "127.0.0.2"}, 1)
      assert.are.equal(1, calls)
    end)
    core.tcp_server = real
    assert(ok, err)
  end))

  -- What host nil does where the system lacks IPv6: a later address that
  -- cannot be had there is left out.
  it("leaves out, for every interface, an address the system cannot give",
     helper.async(function()
    local core = require "lasync.core"
    local srv = core.tcp_server(say_hi, {"127.0.0.1", "192.0.2.1"}, 0, nil, nil, nil, nil, true)
    local _, port = srv:sockname()
    assert.are.equal("hi\n", hi_from("127.0.0.1", port))
    assert.matches("^<Server fd=%d+ 0 connections>$", tostring(srv))
    util.stop(srv)
  end))

  -- A link-local IPv6 address of this machine with its interface
  -- ("fe80::...%eth0"), from /proc/net/if_inet6 (scope 20: link), or nil.
  local function link_local()
    local f = io.open("/proc/net/if_inet6")
    if not f then return nil end
    local text = f:read("a")
    f:close()
    local hex, name = text:match("(%x+) %x+ %x+ 20 %x+%s+(%S+)")
    return hex and hex:gsub("%x%x%x%x", ":%0"):sub(2) .. "%" .. name
  end

  it("listens and connects on a link-local IPv6 address, with its scope",
     helper.async(function()
    -- without its scope the connect would fail with EINVAL
    local err = catch(lasync.wait_for, function()
      return lasync.open_connection("fe80::1%lo", 9)
    end, 2)
    assert.are_not.equal("EINVAL", err.code, tostring(err))
    local host = link_local()
    if not host then return end  -- no such address here: the part above stands
    local srv = lasync.start_server(function(r, w) w:write(r:readline()) end, host, 0)
    local bound, port = srv:sockname()
    assert.matches("^fe80:.*%%", bound)
    local r, w = lasync.open_connection(host, port)
    w:write("scoped\n")
    assert.are.equal("scoped\n", r:readline())
    w:close()
    util.stop(srv)
  end))
end)

describe("a Unix socket server", function()
  local path = os.tmpname() .. ".sock"

  it("serves at a path, which is removed on close", helper.async(function()
    local srv = lasync.start_unix_server(util.echo, path)
    assert.are.equal(path, srv:sockname())
    assert.are.same({{path = path}}, srv:socknames())
    assert.is_true(os.rename(path, path))  -- the socket file is there
    local r, w = lasync.open_unix_connection(path)
    w:write("over unix\n")
    assert.are.equal("over unix\n", r:readline())
    assert.are.equal(path, r:get_extra_info("peername"))
    assert.are.equal("", r:get_extra_info("sockname"))  -- unnamed
    w:close()
    util.stop(srv)
    assert.are.same({}, srv:socknames())
    assert.is_nil(os.rename(path, path))
  end))

  it("replaces a stale socket file", helper.async(function()
    local old = lasync.start_unix_server(util.echo, path)
    local new = lasync.start_unix_server(util.echo, path)
    old:close()  -- its file was replaced: it leaves the new one alone
    local r, w = lasync.open_unix_connection(path)
    w:write("x")
    assert.are.equal("x", r:read(1))
    w:close()
    util.stop(new)
    old:wait_closed()
  end))

  it("raises OSError ENOENT when there is no socket file", helper.async(function()
    local err = catch(lasync.open_unix_connection, path)
    assert.is_true(util.is("OSError", err), tostring(err))
    assert.are.equal("ENOENT", err.code)
  end))
end)

describe("a stream", function()
  it("tells its addresses and fd", helper.async(function()
    local srv, port = util.server(util.echo)
    local r, w = lasync.open_connection("127.0.0.1", port)
    assert.are.equal(r, w)
    local host, p = w:get_extra_info("peername")
    assert.are.same({"127.0.0.1", port}, {host, p})
    local lhost, lport = w:get_extra_info("sockname")
    assert.are.equal("127.0.0.1", lhost)
    assert.is_true(lport > 0 and lport ~= port)
    assert.are.equal("integer", math.type(w:get_extra_info("fd")))
    assert.are.equal("default", w:get_extra_info("nothing", "default"))
    assert.matches("^<Stream fd=%d+>$", tostring(w))
    w:close()
    assert.is_nil(w:get_extra_info("peername"))
    util.stop(srv)
  end))

  it("dropped after a cancelled wait_closed is still collected and closed",
     helper.async(function()
    local eof = lasync.Event()
    local srv, port = util.server(function(r)
      r:read()
      eof:set()
    end)
    local weak = setmetatable({}, {__mode = "v"})
    do
      local _, w = lasync.open_connection("127.0.0.1", port)
      assert.is_false(pcall(lasync.wait_for, function() w:wait_closed() end, 0.001))
      weak[1] = w
    end
    collectgarbage()
    collectgarbage()
    assert.is_nil(weak[1])
    lasync.wait_for(function() eof:wait() end, 1)  -- its socket was closed
    util.stop(srv)
  end))

  it("writes lists and waits for the close", helper.async(function()
    local srv, port = util.server(util.echo)
    local r, w = lasync.open_connection("127.0.0.1", port)
    w:writelines {"a", "bc", "", "d\n"}
    assert.are.equal("abcd\n", r:readline())
    assert.is_false(w:is_closing())
    w:close()
    assert.is_true(w:is_closing())
    w:wait_closed()
    w:close()
    assert.matches("^<Stream closed", tostring(w))
    assert.is_true(util.is("ConnectionResetError", catch(w.drain, w)))
    w:write("dropped after close")
    util.stop(srv)
  end))

  it("sends what is buffered before a close closes the socket", helper.async(function()
    local got = lasync.Future()
    local srv, port = util.server(function(r) got:set_result(r:read()) end)
    local size = 4 * 1024 * 1024
    local function send_and_drop()
      local _, w = lasync.open_connection("127.0.0.1", port)
      w:write(("q"):rep(size))
      w:close()  -- the flush goes on with the stream dropped
    end
    send_and_drop()
    collectgarbage()
    collectgarbage()
    assert.are.equal(size, #got:await())
    util.stop(srv)
  end))
end)

describe("after its loop is closed", function()
  it("a stream that was flushing can be closed and collected", function()
    local kept
    lasync.run(function()
      local srv, port = util.server(function(r) r:read() end)
      local _, w = lasync.open_connection("127.0.0.1", port)
      w:write(("x"):rep(16 * 1024 * 1024))  -- more than the sockets take
      w:close()  -- still flushing when the loop ends
      srv:close()
      kept = w
    end)
    collectgarbage()
    collectgarbage()
    kept:close()
    assert.is_true(kept:is_closing())
    assert.matches("^<Stream closed", tostring(kept))
  end)

  it("a server can be closed", function()
    local srv = lasync.run(function()
      return lasync.start_server(util.echo, "127.0.0.1", 0)
    end)
    collectgarbage()
    collectgarbage()
    srv:close()
    assert.is_false(srv:is_serving())
  end)
end)
