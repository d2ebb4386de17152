-- lasync.open_datagram (docs/reference.md §9): UDP endpoints, bound and
-- connected, IPv4 and IPv6; every method and its errors; ICMP errors on a
-- connected endpoint; cancellation; close. The behaviours of CPython's
-- test_asyncio/test_events.py create_datagram_endpoint tests come first;
-- those of test_base_events.py that fit (cant_bind, no_matching_family,
-- noaddr_nofamily, no_addrinfo, reuse_port) are below, with the errors.
-- Floods, the queue's bound and a real peer: datagram_flood_spec.lua.
local lasync = require "lasync"
local core = require "lasync.core"
local helper = require "helper"

local catch = helper.error_of

local function bound(host, opts)
  opts = opts or {}
  opts.local_host, opts.local_port = host or "127.0.0.1", opts.local_port or 0
  return lasync.open_datagram(opts)
end

-- A port no endpoint listens on: one the kernel just gave and took back.
local function closed_port(host)
  local ep = bound(host)
  local _, port = ep:sockname()
  ep:close()
  return port
end

local function assert_oserror(err, code, text)
  assert.is_true(lasync.OSError:is(err), tostring(err))
  assert.are.equal(code, err.code)
  if text then assert.truthy(tostring(err):find(text, 1, true), tostring(err)) end
end

-- test_events.py: _test_create_datagram_endpoint, for IPv4 and IPv6.
local function echo_exchange(host)
  local server = bound(host)
  local shost, sport = server:sockname()
  assert.are.equal(host, shost)
  assert.is_true(sport > 0)
  local answered = lasync.spawn(function()
    local data, h, p = server:recvfrom()
    server:sendto("resp:" .. data, h, p)
    return data, h, p
  end)
  local client = lasync.open_datagram {remote_host = shost, remote_port = sport}
  client:send("xxx")
  local data, h, p = client:recvfrom()
  assert.are.same({"resp:xxx", shost, sport}, {data, h, p})
  local got, from, fport = answered:await()
  assert.are.same({"xxx", host}, {got, from})
  assert.are.same({host, fport}, {client:sockname()})
  client:close()
  server:close()
end

describe("lasync.open_datagram", function()
  describe("as CPython's test_events create_datagram_endpoint", function()
    it("echoes over IPv4", helper.async(function() echo_exchange("127.0.0.1") end))
    it("echoes over IPv6", helper.async(function() echo_exchange("::1") end))

    it("opens from an address that getaddrinfo found (the sock variant)", helper.async(function()
      local a = lasync.getaddrinfo("127.0.0.1", 0, {type = "dgram"})[1]
      local ep = lasync.open_datagram {local_host = a.host, local_port = a.port}
      assert.are.equal("127.0.0.1", (ep:sockname()))
      ep:close()
    end))
  end)

  describe("endpoints", function()
    it("send and receive whole datagrams, in order, unconnected", helper.async(function()
      local a, b = bound(), bound()
      local bh, bp = b:sockname()
      local _, ap = a:sockname()
      for i = 1, 5 do a:sendto(("d%d"):format(i), bh, bp) end
      for i = 1, 5 do
        assert.are.same({("d%d"):format(i), "127.0.0.1", ap}, {b:recvfrom()})
      end
      a:close()
      b:close()
    end))

    it("carry an empty datagram and one of 65,507 bytes whole", helper.async(function()
      local ep = bound()
      local h, p = ep:sockname()
      local big = ("0123456789abcdef"):rep(4096):sub(1, 65507)
      ep:sendto("", h, p)
      ep:sendto(big, h, p)
      assert.are.equal("", (ep:recvfrom()))
      local got = ep:recvfrom()
      assert.are.equal(65507, #got)
      assert.are.equal(big, got)
      ep:close()
    end))

    it("bound and connected at once", helper.async(function()
      local server = bound()
      local sh, sp = server:sockname()
      local client = lasync.open_datagram {local_host = "127.0.0.1", local_port = 0,
                                           remote_host = sh, remote_port = sp}
      local ch, cp = client:sockname()
      client:send("hi")
      assert.are.same({"hi", ch, cp}, {server:recvfrom()})
      server:sendto("back", ch, cp)
      assert.are.same({"back", sh, sp}, {client:recvfrom()})
      client:sendto("to", sh, sp)  -- sendto the connected peer works too
      assert.are.equal("to", (server:recvfrom()))
      client:close()
      server:close()
    end))

    it("bind the wildcard address when given only a local port", helper.async(function()
      local ep = lasync.open_datagram {local_port = 0}
      local h, p = ep:sockname()
      assert.are.equal("0.0.0.0", h)
      ep:sendto("w", "127.0.0.1", p)
      assert.are.equal("w", (ep:recvfrom()))
      ep:close()
    end))

    it("resolve host names without blocking (localhost)", helper.async(function()
      -- both ends take localhost's first address, IPv4 or IPv6
      local server = bound("localhost")
      local sh, sp = server:sockname()
      assert.is_true(sh == "127.0.0.1" or sh == "::1", sh)
      local client = lasync.open_datagram {remote_host = "localhost", remote_port = sp}
      client:send("by name")
      local data, h = server:recvfrom()
      assert.are.equal("by name", data)
      assert.are.equal(sh, h)
      client:close()
      server:close()
    end))

    it("share a port with reuse_port, and refuse to without", helper.async(function()
      local a = bound("127.0.0.1", {reuse_port = true})
      local _, port = a:sockname()
      local b = bound("127.0.0.1", {local_port = port, reuse_port = true})
      assert.are.equal(port, select(2, b:sockname()))
      local err = catch(bound, "127.0.0.1", {local_port = port})
      assert_oserror(err, "EADDRINUSE", "bind to 127.0.0.1:" .. port)
      a:close()
      b:close()
    end))

    it("count no drop while the queue keeps up", helper.async(function()
      local ep = bound()
      assert.are.equal(0, ep:dropped())
      ep:close()
      assert.are.equal(0, ep:dropped())
    end))

    it("show their address", helper.async(function()
      local ep = bound("::1")
      assert.truthy(tostring(ep):find("^<DatagramEndpoint %[::1%]:%d+>$"), tostring(ep))
      ep:close()
      assert.are.equal("<DatagramEndpoint closed>", tostring(ep))
    end))
  end)

  describe("ICMP errors on a connected endpoint", function()
    it("raise ConnectionRefusedError from the next recvfrom", helper.async(function()
      local port = closed_port()
      local ep = lasync.open_datagram {remote_host = "127.0.0.1", remote_port = port}
      ep:send("anyone?")
      local err = catch(ep.recvfrom, ep)
      assert.is_true(lasync.ConnectionRefusedError:is(err), tostring(err))
      assert_oserror(err, "ECONNREFUSED", "recvfrom")
      ep:close()
    end))

    it("raise it from the next send, once, when the loop met it first", helper.async(function()
      local port = closed_port("::1")
      local ep = lasync.open_datagram {remote_host = "::1", remote_port = port}
      ep:send("anyone?")
      lasync.sleep(0.05)  -- the loop polls: the read event meets the error
      local err = catch(ep.send, ep, "again")
      assert.is_true(lasync.ConnectionRefusedError:is(err), tostring(err))
      assert_oserror(err, "ECONNREFUSED", "send")
      -- raised once: the endpoint is usable again
      local server = bound("::1", {local_port = port})
      ep:send("now")
      assert.are.equal("now", (server:recvfrom()))
      server:close()
      ep:close()
    end))
  end)

  describe("closing", function()
    it("is idempotent, and every method then raises an OSError", helper.async(function()
      local ep = bound()
      ep:close()
      ep:close()
      for _, call in ipairs {
        {"recvfrom"}, {"sendto", "x", "127.0.0.1", 9}, {"sockname"},
      } do
        local err = catch(ep[call[1]], ep, table.unpack(call, 2))
        assert_oserror(err, "EBADF", call[1] .. ": the endpoint is closed")
      end
      local c = lasync.open_datagram {remote_host = "127.0.0.1", remote_port = 9}
      c:close()
      assert_oserror(catch(c.send, c, "x"), "EBADF", "send: the endpoint is closed")
    end))

    it("wakes a waiting recvfrom with that error", helper.async(function()
      local ep = bound()
      local t = lasync.spawn(ep.recvfrom, ep)
      helper.settle()
      ep:close()
      assert_oserror(catch(t.await, t), "EBADF", "recvfrom: the endpoint is closed")
    end))

    it("closes with a <close> variable and when collected", helper.async(function()
      local kept
      do
        local ep <close> = bound()
        kept = ep
      end
      assert.are.equal("<DatagramEndpoint closed>", tostring(kept))
      bound()  -- dropped: the collection at the end closes it (fds checked)
    end))
  end)

  describe("cancellation", function()
    it("of a waiting recvfrom leaves the endpoint usable and loses nothing", helper.async(function()
      local ep = bound()
      local h, p = ep:sockname()
      local t = lasync.spawn(ep.recvfrom, ep)
      helper.settle()
      ep:sendto("kept", h, p)  -- in the socket, not received yet
      t:cancel()
      assert.is_true(helper.is_cancelled(catch(t.await, t)))
      assert.are.equal("kept", (ep:recvfrom()))
      local again = lasync.spawn(ep.recvfrom, ep)
      helper.settle()
      ep:sendto("next", h, p)
      assert.are.equal("next", (again:await()))
      ep:close()
    end))

    it("under wait_for: a timeout, then the next datagram", helper.async(function()
      local ep = bound()
      local h, p = ep:sockname()
      local err = catch(lasync.wait_for, lasync.spawn(ep.recvfrom, ep), 0.01)
      assert.is_true(lasync.TimeoutError:is(err), tostring(err))
      ep:sendto("late", h, p)
      assert.are.equal("late", (ep:recvfrom()))
      ep:close()
    end))
  end)

  describe("sends that wait for room", function()
    -- core._datagram_hold makes every send wait as if the socket were full
    -- (loopback never is): the path a busy network interface takes.
    it("go in order, and each sender resumes once its datagram went", helper.async(function()
      local a, b = bound(), bound()
      local h, p = b:sockname()
      core._datagram_hold(a, true)
      local order, senders = {}, {}
      for i = 1, 40 do
        senders[i] = lasync.spawn(function()
          a:sendto("s" .. i, h, p)
          order[#order + 1] = i
        end)
      end
      helper.settle()
      assert.are.equal(0, #order)
      core._datagram_hold(a, false)
      for i = 1, 40 do senders[i]:await() end
      for i = 1, 40 do
        assert.are.equal(i, order[i])
        assert.are.equal("s" .. i, (b:recvfrom()))
      end
      a:close()
      b:close()
    end))

    it("a cancelled sender's datagram still goes, in its place", helper.async(function()
      local a, b = bound(), bound()
      local h, p = b:sockname()
      core._datagram_hold(a, true)
      local t1 = lasync.spawn(a.sendto, a, "one", h, p)
      local t2 = lasync.spawn(a.sendto, a, "two", h, p)
      helper.settle()
      t1:cancel()
      assert.is_true(helper.is_cancelled(catch(t1.await, t1)))
      local t3 = lasync.spawn(a.sendto, a, "three", h, p)
      helper.settle()
      core._datagram_hold(a, false)
      t2:await()
      t3:await()
      for _, want in ipairs {"one", "two", "three"} do
        assert.are.equal(want, (b:recvfrom()))
      end
      a:close()
      b:close()
    end))

    it("a refused one fails its sender alone, the next ones go", helper.async(function()
      local a, b = bound(), bound()
      local h, p = b:sockname()
      core._datagram_hold(a, true)
      local t1 = lasync.spawn(a.sendto, a, "one", h, p)
      -- broadcast without SO_BROADCAST: the kernel refuses it (EACCES)
      local t2 = lasync.spawn(a.sendto, a, "bad", "255.255.255.255", p)
      local t3 = lasync.spawn(a.sendto, a, "three", h, p)
      helper.settle()
      core._datagram_hold(a, false)
      t1:await()
      assert_oserror(catch(t2.await, t2), "EACCES", "sendto")
      t3:await()
      assert.are.equal("one", (b:recvfrom()))
      assert.are.equal("three", (b:recvfrom()))
      a:close()
      b:close()
    end))

    it("a sender cancelled before its datagram went resumes without it", helper.async(function()
      local a, b = bound(), bound()
      local h, p = b:sockname()
      core._datagram_hold(a, true)
      local t = lasync.spawn(a.sendto, a, "gone", h, p)
      helper.settle()
      t:cancel()
      core._datagram_hold(a, false)  -- sent, and freed, before t resumes
      assert.is_true(helper.is_cancelled(catch(t.await, t)))
      assert.are.equal("gone", (b:recvfrom()))
      a:sendto("after", h, p)
      assert.are.equal("after", (b:recvfrom()))
      a:close()
      b:close()
    end))

    it("close wakes the waiting senders with the closed error", helper.async(function()
      local a, b = bound(), bound()
      local h, p = b:sockname()
      core._datagram_hold(a, true)
      local t = lasync.spawn(a.sendto, a, "never", h, p)
      helper.settle()
      a:close()
      assert_oserror(catch(t.await, t), "EBADF", "sendto: the endpoint is closed")
      b:close()
    end))
  end)

  describe("replies sent while received datagrams wait (one sendmmsg)", function()
    -- rx with n datagrams from tx queued: nothing below has to wait for them
    local function queued(n)
      local rx, tx = bound(), bound()
      local h, p = rx:sockname()
      for i = 1, n do tx:sendto("q" .. i, h, p) end
      lasync.sleep(0.01)
      return rx, tx
    end

    it("go, in order", helper.async(function()
      local rx, tx = queued(10)
      for _ = 1, 10 do
        local data, h, p = rx:recvfrom()
        rx:sendto("re:" .. data, h, p)
      end
      for i = 1, 10 do assert.are.equal("re:q" .. i, (tx:recvfrom())) end
      rx:close()
      tx:close()
    end))

    it("go at the loop's next poll with no further recvfrom", helper.async(function()
      local rx, tx = queued(2)
      local data, h, p = rx:recvfrom()
      rx:sendto("re:" .. data, h, p)  -- one still queued: this one waits
      assert.are.equal("re:q1", (tx:recvfrom()))
      rx:close()
      tx:close()
    end))

    it("go before close() closes the socket", helper.async(function()
      local rx, tx = queued(2)
      local data, h, p = rx:recvfrom()
      rx:sendto("re:" .. data, h, p)
      rx:close()
      assert.are.equal("re:q1", (tx:recvfrom()))
      tx:close()
    end))

    it("keep a refusal for the next call, and the queue intact", helper.async(function()
      local rx, tx = queued(2)
      local _, _, p = rx:recvfrom()
      rx:sendto("bad", "255.255.255.255", p)  -- returns: it waits to go
      lasync.sleep(0.01)
      assert_oserror(catch(rx.recvfrom, rx), "EACCES", "sendto (an earlier datagram): ")
      assert.are.equal("q2", (rx:recvfrom()))
      rx:close()
      tx:close()
    end))
  end)

  describe("misuse raises at once, naming the argument", function()
    local function msg(fn, ...)
      return tostring(catch(fn, ...))
    end

    it("send on an endpoint that is not connected", helper.async(function()
      local ep = bound()
      assert.truthy(msg(ep.send, ep, "x"):find("send: the endpoint is not connected", 1, true))
      ep:close()
    end))

    it("sendto a bad host or port, or an address of the other family", helper.async(function()
      local ep = bound()
      assert.truthy(msg(function() ep:sendto("x", "not-an-address", 9) end):find(
        "bad argument #2 to 'sendto' (numeric IPv4 or IPv6 address expected, got 'not-an-address')",
        1, true))
      assert.truthy(msg(function() ep:sendto("x", "127.0.0.1", 70000) end):find(
        "bad argument #3 to 'sendto' (port must be from 0 to 65535)", 1, true))
      assert.truthy(msg(function() ep:sendto("x", "::1", 9) end):find(
        "bad argument #2 to 'sendto' (IPv4 address expected (the endpoint is IPv4))", 1, true))
      assert.truthy(msg(function() ep:sendto("x") end):find(
        "bad argument #2 to 'sendto' (string expected, got no value)", 1, true))
      ep:close()
    end))

    it("a datagram that is too large or not a string", helper.async(function()
      local ep = bound()
      local h, p = ep:sockname()
      assert.truthy(msg(function() ep:sendto(("x"):rep(65508), h, p) end):find(
        "bad argument #1 to 'sendto' (datagram of at most 65507 bytes expected, got 65508)", 1, true))
      assert.truthy(msg(function() ep:sendto({}, h, p) end):find(
        "bad argument #1 to 'sendto' (string expected, got table)", 1, true))
      local c = lasync.open_datagram {remote_host = h, remote_port = p}
      assert.truthy(msg(function() c:send(("x"):rep(70000)) end):find(
        "bad argument #1 to 'send' (datagram of at most 65507 bytes expected, got 70000)", 1, true))
      c:close()
      ep:close()
    end))

    it("a method on something else", helper.async(function()
      local ep = bound()
      assert.truthy(msg(ep.recvfrom, {}):find("DatagramEndpoint expected, got table", 1, true))
      ep:close()
    end))

    it("a second task waiting in recvfrom", helper.async(function()
      local ep = bound()
      local t = lasync.spawn(ep.recvfrom, ep)
      helper.settle()
      assert.truthy(msg(ep.recvfrom, ep):find("another task is already waiting", 1, true))
      ep:close()
      catch(t.await, t)
    end))

    it("bad options to open_datagram", helper.async(function()
      local od = lasync.open_datagram
      assert.truthy(msg(od):find("bad argument #1 to 'open_datagram' (table of options expected, got nil)", 1, true))
      assert.truthy(msg(od, {}):find("opts.local_host, opts.local_port or opts.remote_host expected", 1, true))
      assert.truthy(msg(od, {bogus = 1}):find("unknown option 'bogus'", 1, true))
      assert.truthy(msg(od, {local_port = -1}):find(
        "opts.local_port must be a port (integer from 0 to 65535), got -1", 1, true))
      assert.truthy(msg(od, {local_host = ""}):find("opts.local_host must be a host name or address", 1, true))
      assert.truthy(msg(od, {remote_host = "127.0.0.1"}):find("opts.remote_port needed with opts.remote_host", 1, true))
      assert.truthy(msg(od, {remote_port = 9}):find("opts.remote_host needed with opts.remote_port", 1, true))
      assert.truthy(msg(od, {local_port = 0, queue = 0}):find("opts.queue must be a positive integer", 1, true))
      assert.truthy(msg(od, {local_port = 0, reuse_port = 1}):find("opts.reuse_port must be a boolean", 1, true))
    end))

    it("open_datagram outside a task", function()
      local err = catch(lasync.open_datagram, {local_port = 0})
      assert.truthy(tostring(err):find("open_datagram called outside a task", 1, true))
    end)
  end)

  describe("operational failures raise OSError with a code", function()
    it("binding an address this machine does not have", helper.async(function()
      assert_oserror(catch(bound, "192.0.2.1"), "EADDRNOTAVAIL", "bind to 192.0.2.1:0")
    end))

    it("a datagram the kernel refuses (broadcast without SO_BROADCAST)", helper.async(function()
      local ep = bound()
      assert_oserror(catch(ep.sendto, ep, "x", "255.255.255.255", 9), "EACCES", "sendto")
      ep:close()
    end))

    it("local and remote hosts with no family in common", helper.async(function()
      local err = catch(lasync.open_datagram, {local_host = "::1", local_port = 0,
                                               remote_host = "127.0.0.1", remote_port = 9})
      assert_oserror(err, "EAFNOSUPPORT", "no local address of the remote host's family")
    end))

    it("an unknown host name", helper.async(function()
      local err = catch(lasync.wait_for, lasync.spawn(lasync.open_datagram,
        {remote_host = "no-such-host.invalid", remote_port = 9}), 2)
      -- offline, the resolver may not answer before the hang guard
      assert.is_true(lasync.OSError:is(err) or lasync.TimeoutError:is(err), tostring(err))
    end))
  end)
end)
