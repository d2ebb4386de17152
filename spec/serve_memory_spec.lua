--- `lasync serve` gives freed memory back to the system (issue 16's soak):
-- glibc keeps a heap's free middle, so without serve's trim every second
-- (lua/lasync/serve.lua, src/process.c) a server's RSS would stay at its
-- highest use. The handler fills tens of MiB with small strings, keeps one
-- allocation made after them (so the heap's top cannot shrink), drops the
-- rest and collects; the server's RSS must come back down.
local lasync = require "lasync"
local helper = require "helper"

local ROOT = debug.getinfo(1, "S").source:match("^@(.-)spec/[^/]*$")
if ROOT == "" then ROOT = "./" end

local GROW = [[
local pinned = {}
local function rss()
  local f = assert(io.open("/proc/self/status"))
  local kb = f:read("a"):match("VmRSS:%s*(%d+)")
  f:close()
  return kb
end
-- "grow": answers its RSS at the peak, after it freed the strings.
return function(r, w)
  local what, peak = r:readline(), ""
  if what == "grow\n" then
    local t = {}
    for i = 1, 400000 do t[i] = ("m"):rep(64) .. i end
    pinned[#pinned + 1] = ("p"):rep(64) .. #pinned  -- above them in the heap
    peak = rss()
    t = nil
    collectgarbage()
    collectgarbage()
  end
  w:write("ok " .. peak .. "\n")
  w:drain()
end
]]

local function rss_kb(pid)
  local text = helper.read_file(("/proc/%d/status"):format(pid))
  return tonumber(text:match("VmRSS:%s*(%d+)"))
end

-- Sends one line to the server; returns the number after its "ok", if any.
local function ask(port, line)
  local r, w = lasync.open_connection("127.0.0.1", port)
  w:write(line .. "\n")
  local answer = r:readline()
  w:close()
  assert.matches("^ok %d*\n$", answer)
  return tonumber(answer:match("%d+"))
end

describe("lasync serve's memory", function()
  local scratch = helper.scratch()
  lazy_teardown(scratch.cleanup)

  -- Under make test-asan the allocator is the sanitizer's, not glibc's.
  local sanitized = (os.getenv("LD_PRELOAD") or ""):find("asan")
  local test = sanitized and pending or it

  test("comes back to the system after a peak, within seconds", helper.async(function()
    local script = scratch.write("grow.lua", GROW)
    local p = lasync.create_subprocess_exec({ROOT .. "scripts/lasync", "serve", script,
      "--listen", "127.0.0.1:0"}, {stderr = "pipe", stdin = "null", stdout = "null"})
    local port
    repeat
      local line = p.stderr:readline()
      port = tonumber(line:match("listening on 127%.0%.0%.1:(%d+)"))
    until port or line == ""
    assert.is_truthy(port, "the server did not listen")
    ask(port, "hello")
    local idle = rss_kb(p.pid)
    local peak = ask(port, "grow")
    local now = rss_kb(p.pid)
    for _ = 1, 50 * helper.SLOWDOWN do  -- up to 5 s: the trim runs every second
      now = rss_kb(p.pid)
      if now < idle + 8 * 1024 then break end
      lasync.sleep(0.1)
    end
    p:terminate()
    assert.equal(0, p:wait())
    p.stderr:close()
    assert.is_true(peak > idle + 20 * 1024, ("the handler did not grow the heap: %d kB, then %d kB")
      :format(idle, peak))
    assert.is_true(now < idle + 8 * 1024, ("RSS %d kB idle, %d kB at the peak, still %d kB 5 s later")
      :format(idle, peak, now))
  end, 30))
end)
