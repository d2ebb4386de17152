-- lasync.getaddrinfo (docs/reference.md §9): evdns, never blocking the loop. Numeric
-- hosts and names in /etc/hosts are answered without suspending; other
-- names go to the nameservers of /etc/resolv.conf. There is no network
-- here: the specs only look up names that no nameserver knows, and accept
-- the two outcomes an offline machine can give (see "unknown names").
local lasync = require "lasync"
local helper = require "helper"

local catch = helper.error_of

-- A name under .invalid (RFC 2606): no nameserver resolves it.
local UNKNOWN = "no-such-host.invalid"

-- Longer than a nameserver takes to answer NXDOMAIN, shorter than evdns
-- takes to give up on one that never answers (5 s timeout, 3 attempts).
local PATIENCE = 2

local function is_loopback(a)
  return (a.family == "inet" and a.host == "127.0.0.1")
      or (a.family == "inet6" and a.host == "::1")
end

-- Runs fn() while another task counts the loop iterations it sees;
-- returns how many ran while fn ran, then fn's results (packed).
local function ticks_during(fn)
  local inside, ticks, stop = false, 0, false
  local ticker = lasync.spawn(function()
    while not stop do
      if inside then ticks = ticks + 1 end
      lasync.sleep(0)
    end
  end)
  inside = true
  local res = table.pack(pcall(fn))
  inside, stop = false, true
  ticker:await()
  return ticks, res
end

-- The lookup of UNKNOWN under wait_for: the error it ended with.
local function unknown_lookup_error()
  return catch(lasync.wait_for, lasync.spawn(lasync.getaddrinfo, UNKNOWN, 80),
               PATIENCE)
end

-- An unknown name fails with OSError and an EAI code when a nameserver
-- answers (this machine: EAI_NONAME within a millisecond); with none
-- reachable evdns keeps trying past PATIENCE and wait_for gives up with
-- TimeoutError. Either way it ends: it never hangs.
local function assert_unknown_failed(err, host)
  if lasync.TimeoutError:is(err) then return end
  assert.is_true(lasync.OSError:is(err), tostring(err))
  assert.is_true(({EAI_NONAME = true, EAI_NODATA = true, EAI_FAIL = true,
                   EAI_AGAIN = true})[err.code], err.code)
  assert.are.equal("integer", math.type(err.errno))
  assert.are.equal(1, tostring(err):find("OSError: " .. (host or UNKNOWN) .. ": ", 1, true))
end

describe("lasync.getaddrinfo", function()
  describe("answers at once, without suspending,", function()
    it("localhost from /etc/hosts: 127.0.0.1 and/or ::1", helper.async(function()
      local ticks, res = ticks_during(function()
        return lasync.getaddrinfo("localhost", 80)
      end)
      assert.is_true(res[1], tostring(res[2]))
      assert.are.equal(0, ticks)
      assert.is_true(#res[2] >= 1)
      for _, a in ipairs(res[2]) do
        assert.is_true(is_loopback(a), a.family .. " " .. a.host)
        assert.are.equal(80, a.port)
      end
    end))

    it("a numeric IPv4 address", helper.async(function()
      assert.are.same({{family = "inet", host = "127.0.0.1", port = 8080}},
                      lasync.getaddrinfo("127.0.0.1", 8080))
    end))

    it("a numeric IPv6 address, written back in its short form", helper.async(function()
      assert.are.same({{family = "inet6", host = "::1", port = 443}},
                      lasync.getaddrinfo("::1", 443))
      assert.are.same({{family = "inet6", host = "2001:db8::1", port = 1}},
                      lasync.getaddrinfo("2001:0db8:0:0:0:0:0:1", 1))
    end))

    it("a link-local IPv6 address with its scope, which connecting needs",
       helper.async(function()
      assert.are.same({{family = "inet6", host = "fe80::1%lo", port = 80}},
                      lasync.getaddrinfo("fe80::1%lo", 80))
      assert.are.same({{family = "inet6", host = "fe80::1%lo", port = 80}},
                      lasync.getaddrinfo("fe80::1%1", 80))  -- lo is interface 1
    end))
  end)

  describe("port", function()
    it("is a number, a numeric string or nil (0)", helper.async(function()
      assert.are.same(lasync.getaddrinfo("127.0.0.1", 80),
                      lasync.getaddrinfo("127.0.0.1", "80"))
      assert.are.equal(80, lasync.getaddrinfo("localhost", "80")[1].port)
      assert.are.equal(65535, lasync.getaddrinfo("::1", 65535)[1].port)
      assert.are.equal(0, lasync.getaddrinfo("127.0.0.1")[1].port)
      assert.are.equal(0, lasync.getaddrinfo("127.0.0.1", nil, {})[1].port)
    end))

    it("an unknown service name fails with OSError", helper.async(function()
      local err = catch(lasync.getaddrinfo, "127.0.0.1", "no-such-service")
      assert.is_true(lasync.OSError:is(err), tostring(err))
      assert.are.equal("EAI_NONAME", err.code)
      -- The system's gai_strerror text (glibc's), not libevent's BSD one.
      assert.are.equal("127.0.0.1: Name or service not known", err.message)
    end))
  end)

  describe("opts", function()
    it("family = 'inet' keeps IPv4 addresses only", helper.async(function()
      local list = lasync.getaddrinfo("localhost", 1, {family = "inet"})
      assert.are.same({{family = "inet", host = "127.0.0.1", port = 1}}, list)
      local err = catch(lasync.getaddrinfo, "::1", 1, {family = "inet"})
      assert.is_true(lasync.OSError:is(err), tostring(err))
      assert.are.equal("EAI_NONAME", err.code)
    end))

    it("family = 'inet6' keeps IPv6 addresses only", helper.async(function()
      assert.are.same({{family = "inet6", host = "::1", port = 2}},
                      lasync.getaddrinfo("::1", 2, {family = "inet6"}))
      local err = catch(lasync.getaddrinfo, "127.0.0.1", 2, {family = "inet6"})
      assert.is_true(lasync.OSError:is(err), tostring(err))
      -- localhost: ::1 if /etc/hosts lists it, else no address (an error).
      local ok, list = pcall(lasync.getaddrinfo, "localhost", 2, {family = "inet6"})
      if ok then
        assert.are.same({{family = "inet6", host = "::1", port = 2}}, list)
      else
        assert.are.equal("EAI_NODATA", list.code)
      end
    end))

    it("type = 'dgram' gives the same addresses as 'stream'", helper.async(function()
      local stream = lasync.getaddrinfo("localhost", 53, {type = "stream"})
      assert.are.same(stream, lasync.getaddrinfo("localhost", 53, {type = "dgram"}))
      assert.are.same(stream, lasync.getaddrinfo("localhost", 53))
    end))
  end)

  describe("unknown names", function()
    it("fail with OSError and an EAI code, or time out; never hang", helper.async(function()
      assert_unknown_failed(unknown_lookup_error())
    end))

    it("are looked up without blocking the loop", helper.async(function()
      local ticks, res = ticks_during(function()
        return lasync.timeout(PATIENCE, lasync.getaddrinfo, UNKNOWN, 80)
      end)
      assert.is_false(res[1])
      assert_unknown_failed(res[2])
      assert.is_true(ticks > 0, "the loop stood still during the lookup")
    end))

    it("can be looked up by many tasks at once", helper.async(function()
      local tasks = {}
      local function host(i) return "host" .. i .. "." .. UNKNOWN end
      for i = 1, 8 do
        tasks[i] = lasync.spawn(function()
          return catch(lasync.wait_for, lasync.spawn(lasync.getaddrinfo, host(i), i),
                       PATIENCE)
        end)
      end
      for i = 1, 8 do assert_unknown_failed(tasks[i]:await(), host(i)) end
    end))
  end)

  describe("cancelled", function()
    it("raises CancelledError and leaves nothing behind", helper.async(function()
      local reports = helper.reports()
      local t = lasync.spawn(lasync.getaddrinfo, UNKNOWN, 80)
      lasync.sleep(0)                     -- the lookup is in flight
      assert.is_false(t:done())
      assert.is_true(t:cancel("enough"))
      local err = catch(t.await, t)
      assert.is_true(helper.is_cancelled(err))
      assert.are.equal("enough", err.message)
      lasync.sleep(0.02)                  -- evdns calls back: nothing to do
      assert.are.same({}, reports)
      assert.are.equal("127.0.0.1", lasync.getaddrinfo("127.0.0.1", 1)[1].host)
      assert_unknown_failed(unknown_lookup_error())  -- the resolver still works
    end))

    it("by a timeout lets the task go on", helper.async(function()
      local err = catch(lasync.timeout, 0.0001, lasync.getaddrinfo, UNKNOWN, 80)
      -- the nameserver may answer first: then the lookup's own error
      if not lasync.TimeoutError:is(err) then assert_unknown_failed(err) end
      assert.are.equal("ok", lasync.sleep(0.001, "ok"))
    end))
  end)

  describe("a loop closed or dropped with a lookup", function()
    local function loop_with_lookup(cancel)
      local loop = lasync.new_event_loop()
      local t = loop:create_task(lasync.getaddrinfo, UNKNOWN, 80)
      loop:run_until_complete(function()
        lasync.sleep(0)                   -- t's lookup is in flight
        if cancel then t:cancel() lasync.sleep(0) end
      end)
      return loop, t
    end

    it("in flight closes at once", function()
      local loop, t = loop_with_lookup(false)
      loop:close()
      assert.is_true(loop:is_closed())
      assert.is_false(t:done())           -- closing does not run tasks
    end)

    it("cancelled, whose callback is still to come, closes", function()
      local loop, t = loop_with_lookup(true)
      assert.is_true(t:cancelled())
      loop:close()
      assert.is_true(loop:is_closed())
    end)

    it("in flight is collected", function()
      local weak = setmetatable({}, {__mode = "v"})
      weak[1], weak[2] = loop_with_lookup(false)
      for _ = 1, 3 do collectgarbage() end
      assert.is_nil(weak[1])
      assert.is_nil(weak[2])
    end)
  end)

  describe("misuse", function()
    local function raises(pattern, ...)
      local msg = tostring(catch(lasync.getaddrinfo, ...))
      assert.is_truthy(msg:find(pattern), ("%q lacks %q"):format(msg, pattern))
    end

    it("a bad host names argument #1", helper.async(function()
      raises("#1 to '[%w.]*getaddrinfo' %(string expected, got nil%)", nil, 80)
      raises("#1 to .*%(string expected, got table%)", {}, 80)
      raises("#1 to .*non%-empty string without zero bytes expected", "", 80)
      raises("#1 to .*non%-empty string without zero bytes expected", "a\0b", 80)
    end))

    it("a bad port names argument #2", helper.async(function()
      raises("#2 to .*%(number, string or nil expected, got table%)", "::1", {})
      raises("#2 to .*%(number, string or nil expected, got boolean%)", "::1", true)
      raises("#2 to .*%(port must be from 0 to 65535%)", "::1", 65536)
      raises("#2 to .*%(port must be from 0 to 65535%)", "::1", -1)
      raises("#2 to .*number has no integer representation", "::1", 1.5)
      raises("#2 to .*non%-empty string", "::1", "")
    end))

    it("bad opts name argument #3 and the field", helper.async(function()
      raises("#3 to .*%(table expected, got number%)", "::1", 1, 5)
      raises("#3 to .*%(family must be \"inet\", \"inet6\" or nil, got 'ipv4'%)",
             "::1", 1, {family = "ipv4"})
      raises("#3 to .*%(family must be .* or nil, got number%)",
             "::1", 1, {family = 6})
      raises("#3 to .*%(type must be \"stream\", \"dgram\" or nil, got 'raw'%)",
             "::1", 1, {type = "raw"})
      raises("#3 to .*%(unknown option 'bogus'%)", "::1", 1, {bogus = 1})
      raises("#3 to .*%(unknown option '1'%)", "::1", 1, {"inet"})
    end))

    it("outside a task raises", function()
      raises("no running event loop", "::1", 1)
      local loop = lasync.new_event_loop()
      local err
      loop:call_soon(function()
        err = tostring(catch(lasync.getaddrinfo, "::1", 1))
        loop:stop()
      end)
      loop:run_forever()
      loop:close()
      assert.are.equal("getaddrinfo called outside a task", err)
    end)
  end)
end)
