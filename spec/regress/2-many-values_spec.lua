-- Values moved between the loop's thread and a task's were moved without
-- making room: a task spawned with 50 arguments, or returning 1,500
-- values, or a callback with 200, corrupted the heap (found by fuzzing).
local lasync = require "lasync"
local helper = require "helper"
local util = require "core.util"

local function count(...) return select("#", ...) end

local function range(n)
  local t = {}
  for i = 1, n do t[i] = i end
  return t
end

describe("many values (regression)", function()
  local many = range(20000)

  it("passes them to a task and back", helper.async(function()
    local t = lasync.spawn(function(...) return ... end, table.unpack(many))
    assert.are.equal(#many, count(t:await()))
    assert.are.equal(#many, count(lasync.sleep(0, table.unpack(many))))
  end))

  it("passes them to a callback", helper.async(function()
    local loop, got = lasync.get_running_loop(), lasync.Future()
    loop:call_soon(function(...) got:set_result(count(...)) end, table.unpack(many))
    assert.are.equal(#many, got:await())
    got = lasync.Future()
    loop:call_later(0, function(...) got:set_result(count(...)) end, table.unpack(many))
    assert.are.equal(#many, got:await())
  end))

  it("fails a task that returns more values than the loop can take", function()
    local n, t = 999980, {}
    for i = 1, n do t[i] = i end
    local ok, err = lasync.run(function()
      local task = lasync.spawn(function() return table.unpack(t, 1, n) end)
      return pcall(task.await, task)
    end)
    assert.is_false(ok)
    assert.are.equal("task returned too many values", err)
  end)

  it("refuses more arguments than a callback can hold", helper.async(function()
    local loop, too_many = lasync.get_running_loop(), range(70000)
    util.raises({"too many arguments for a callback (70000, at most 65000)"},
      loop.call_soon, loop, count, table.unpack(too_many))
  end))
end)
