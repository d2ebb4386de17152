-- lasync.open_datagram under load: the bounded receive queue (the oldest
-- go, counted in dropped()), a loop that keeps running other tasks during
-- a flood, and a peer no one here wrote: Python's socket module
-- (spec/datagram/peer.py), started and stopped by its PID.
local lasync = require "lasync"
local helper = require "helper"
local http_util = require "http_util"

local PEER = "spec/datagram/peer.py"

local function bound(opts)
  opts = opts or {}
  opts.local_host, opts.local_port = opts.local_host or "127.0.0.1", 0
  return lasync.open_datagram(opts)
end

-- Starts peer.py with args (shell words) in the background: its PID.
local function start_peer(args)
  local p = assert(io.popen(("%s %s %s >/dev/null 2>&1 & echo $!")
    :format(http_util.PYTHON, PEER, args)))
  local pid = p:read("l")
  p:close()
  return pid
end

local function running(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return false end
  local stat = f:read("a")
  f:close()
  return not stat:find("^%d+ %b() Z")
end

-- Waits (letting the loop run) until the process pid has ended.
local function wait_exit(pid)
  while running(pid) do lasync.sleep(0.01) end
end

local function stop(pid)
  os.execute("kill " .. pid .. " 2>/dev/null")
end

describe("lasync.open_datagram under load", function()
  it("keeps the newest datagrams when the queue overflows, counting the dropped", helper.async(function()
    local rx, tx = bound {queue = 16}, bound()
    local h, p = rx:sockname()
    -- 200 datagrams, 8 per loop iteration: the loop receives them all into
    -- the queue, which keeps the last 16
    for i = 1, 200 do
      tx:sendto(tostring(i), h, p)
      if i % 8 == 0 then lasync.sleep(0.001) end
    end
    lasync.sleep(0.01)
    assert.are.equal(184, rx:dropped())
    for i = 185, 200 do assert.are.equal(tostring(i), (rx:recvfrom())) end
    assert.are.equal(184, rx:dropped())
    rx:close()
    tx:close()
  end))

  it("loses nothing while a receiver keeps up", helper.async(function()
    local rx, tx = bound {queue = 4}, bound()
    local h, p = rx:sockname()
    local got = {}
    local reader = lasync.spawn(function()
      for _ = 1, 100 do got[#got + 1] = tonumber((rx:recvfrom())) end
    end)
    for i = 1, 100 do
      tx:sendto(tostring(i), h, p)
      if i % 2 == 0 then lasync.sleep(0) end
    end
    reader:await()
    for i = 1, 100 do assert.are.equal(i, got[i]) end
    assert.are.equal(0, rx:dropped())
    rx:close()
    tx:close()
  end))

  it("lets other tasks run while a receiver finds datagrams waiting", helper.async(function()
    local rx, tx = bound(), bound()
    local h, p = rx:sockname()
    for i = 1, 200 do  -- in fours of 50: the socket's buffer never fills
      tx:sendto(tostring(i), h, p)
      if i % 50 == 0 then lasync.sleep(0.001) end
    end
    lasync.sleep(0.01)  -- all 200 queued: no recvfrom below has to wait
    local received, seen, stop_ticker = 0, {}, false
    local ticker = lasync.spawn(function()
      while not stop_ticker do
        seen[#seen + 1] = received
        lasync.sleep(0)
      end
    end)
    for _ = 1, 200 do
      rx:recvfrom()
      received = received + 1
    end
    stop_ticker = true
    ticker:await()
    -- the ticker ran in the middle of the 200, not only before and after
    local during = 0
    for _, n in ipairs(seen) do
      if n > 0 and n < 200 then during = during + 1 end
    end
    assert.is_true(during >= 2, ("ticks during the receiving: %d"):format(during))
    rx:close()
    tx:close()
  end))

  describe("with Python's socket module as the peer", function()
    local pids = {}
    after_each(function()
      for _, pid in ipairs(pids) do stop(pid) end
      pids = {}
    end)

    local function echo_peer(host)
      local scratch = helper.scratch()
      local peer = http_util.start_python(scratch, "udp-echo",
                                          http_util.PYTHON .. " " .. PEER .. " echo", host)
      scratch.cleanup()
      pids[#pids + 1] = peer.pid
      return peer.port
    end

    for _, host in ipairs {"127.0.0.1", "::1"} do
      it("exchanges datagrams with an echo peer over " .. host, helper.async(function()
        local port = echo_peer(host)
        local ep = lasync.open_datagram {remote_host = host, remote_port = port}
        for i = 1, 20 do
          ep:send("ping " .. i)
          assert.are.same({"echo:ping " .. i, host, port}, {ep:recvfrom()})
        end
        local big = ("z"):rep(65507)
        ep:send(big)
        assert.are.equal(big, (ep:recvfrom()))  -- whole, both ways
        ep:close()
        stop(pids[1])
      end, 15))
    end

    it("runs examples/udp_echo.lua, which answers", helper.async(function()
      local scratch = helper.scratch()
      local out = scratch.tmp("out")
      local cmd = ("LASYNC_BUILD=%s scripts/lasync run examples/udp_echo.lua 127.0.0.1 0 >%s 2>&1 & echo $!")
        :format(os.getenv("LASYNC_BUILD") or "build", out)
      local p = assert(io.popen(cmd))
      pids[#pids + 1] = p:read("l")
      p:close()
      local port
      for _ = 1, 500 do  -- up to 10 s; the shell makes the file first
        local f = io.open(out)
        port = f and tonumber(f:read("a"):match("udp echo on 127%.0%.0%.1 port (%d+)"))
        if f then f:close() end
        if port then break end
        lasync.sleep(0.02)
      end
      scratch.cleanup()
      assert(port, "examples/udp_echo.lua did not start")
      local ep = lasync.open_datagram {remote_host = "127.0.0.1", remote_port = port}
      for _, d in ipairs {"hello", "", ("x"):rep(65507)} do
        ep:send(d)
        assert.are.equal(d, (ep:recvfrom()))
      end
      ep:close()
    end, 15))

    it("refuses once the peer has stopped (ICMP port unreachable)", helper.async(function()
      local port = echo_peer("127.0.0.1")
      local ep = lasync.open_datagram {remote_host = "127.0.0.1", remote_port = port}
      ep:send("up?")
      assert.are.equal("echo:up?", (ep:recvfrom()))
      stop(pids[1])
      wait_exit(pids[1])
      ep:send("down?")
      local err = helper.error_of(ep.recvfrom, ep)
      assert.is_true(lasync.ConnectionRefusedError:is(err), tostring(err))
      assert.are.equal("ECONNREFUSED", err.code)
      ep:close()
    end, 15))

    it("keeps the newest of a flood it cannot take, and counts the rest", helper.async(function()
      local rx = bound {queue = 32}
      local _, p = rx:sockname()
      local pid = start_peer(("flood %d 5000"):format(p))
      pids[#pids + 1] = pid
      wait_exit(pid)
      lasync.sleep(0.02)
      assert.is_true(rx:dropped() > 0)
      local last, prev = nil, 0
      for _ = 1, 32 do
        last = rx:recvfrom()
        if last ~= "end" then
          assert.is_true(tonumber(last) > prev, "in order")
          prev = tonumber(last)
        end
      end
      assert.are.equal("end", last)  -- the newest is there
      rx:close()
    end, 15))

    it("keeps a ticker running while it receives a flood", helper.async(function()
      local rx = bound()
      local _, p = rx:sockname()
      local received, seen, done = 0, {}, false
      local ticker = lasync.spawn(function()
        while not done do
          seen[#seen + 1] = received
          lasync.sleep(0)
        end
      end)
      local pid = start_peer(("flood %d 20000"):format(p))
      pids[#pids + 1] = pid
      while rx:recvfrom() ~= "end" do received = received + 1 end
      done = true
      ticker:await()
      assert.is_true(received > 0)
      local during = {}
      for _, n in ipairs(seen) do
        if n > 0 and n < received then during[n] = true end
      end
      local distinct = 0
      for _ in pairs(during) do distinct = distinct + 1 end
      -- the ticker saw the count grow: it ran between the datagrams
      assert.is_true(distinct >= 5, ("distinct counts seen by the ticker: %d"):format(distinct))
      wait_exit(pid)
      rx:close()
    end, 15))
  end)
end)
