--- lasync.socket checked against LuaSocket itself (issue 14, item 5): each
-- case runs twice against the same scripted Python peer
-- (spec/socklibs/compat_peer.py), once on Debian's LuaSocket (blocking,
-- no loop, in a process of its own: loading LuaSocket ignores SIGPIPE for
-- the whole process, which later specs check is not so) and once on
-- lasync.socket inside a task, and both runs must return the same values
-- and error strings (the cases: spec/socklibs/compat_cases.lua). Where a
-- value cannot be the same (ports, addresses of objects) the case returns
-- what LuaSocket's convention promises about it (a number, the peer's port).
local helper = require "helper"
local compat = require "socklibs.compat"
local cases = require "socklibs.compat_cases"

-- Runs fn on lasync.socket inside a task, under the helper's checks (no task,
-- handle or descriptor left).
local function on_lasync(fn, P)
  return helper.run(function() return fn(require "lasync.socket", P) end, 10)
end

describe("lasync.socket against LuaSocket", function()
  local peer
  local reference = {}

  setup(function() peer = compat.start_peer() end)
  teardown(function() if peer then peer.stop() end end)

  local function luasocket_result(i)
    reference[i] = reference[i] or compat.on_luasocket(i, peer)
    return reference[i]
  end

  for i, c in ipairs(cases) do
    it("LuaSocket: " .. c.name, function()
      reference[i] = nil
      assert.is_table(luasocket_result(i))
    end)
    it("lasync.socket: " .. c.name, function()
      assert.same(luasocket_result(i), on_lasync(c.fn, peer))
    end)
  end
end)
