-- Misuse raises at once with a message naming the argument and what was
-- expected (docs/reference.md §1-4; docs/development.md, convention 13).
-- The checks of each method's other arguments are in the spec of its
-- object; this file covers self and the module functions.
local lasync = require "lasync"
local core = require "lasync.core"
local helper = require "helper"
local util = require "core.util"

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

-- Calls every method of `methods` with `bad` as self; each must raise
-- "bad argument #1 ... (<what> expected, got <got>)".
local function check_self(methods, bad, what, got)
  for _, name in ipairs(sorted_keys(methods)) do
    local msg = util.raises({"bad argument #1 to '", what .. " expected, got " .. got},
      methods[name], bad)
    assert(msg, name)
  end
end

describe("self checks", function()
  it("every loop method rejects a non-loop", function()
    check_self(core._LoopMethods, {}, "loop", "table")
    check_self(core._LoopMethods, nil, "loop", "nil")
  end)

  it("every loop method rejects a future as the loop, by its name", function()
    local loop = lasync.new_event_loop()
    check_self(core._LoopMethods, loop:create_future(), "loop", "lasync.Future")
    loop:close()
  end)

  it("every future method rejects a non-future", function()
    check_self(core._FutureMethods, "x", "future", "string")
    local loop = lasync.new_event_loop()
    check_self(core._FutureMethods, loop, "future", "lasync.Loop")
    loop:close()
  end)

  it("every task method rejects a plain future", function()
    local loop = lasync.new_event_loop()
    local f = loop:create_future()
    for _, name in ipairs {"cancel", "cancelling", "uncancel", "get_name",
                           "set_name", "get_coro"} do
      util.raises({"bad argument #1", "task expected, got lasync.Future"},
        core._TaskMethods[name], f, "arg")
    end
    loop:close()
  end)

  it("handle methods reject a non-handle; when() wants a TimerHandle", function()
    local loop = lasync.new_event_loop()
    local h, th = loop:call_soon(print), loop:call_later(1, print)
    util.raises({"bad argument #1", "handle expected, got table"}, h.cancel, {})
    util.raises({"bad argument #1", "handle expected, got lasync.Loop"}, h.cancelled, loop)
    util.raises({"bad argument #1", "handle expected, got number"}, th.when, 1)
    util.raises({"bad argument #1", "TimerHandle expected"}, th.when, h)
    loop:close()
  end)

  it("a task has every future method but the setters, which raise", function()
    for name in pairs(core._FutureMethods) do
      assert.are.equal("function", type(core._TaskMethods[name]), name)
    end
  end)
end)

describe("module functions", function()
  it("sleep wants a number", helper.async(function()
    util.raises({"bad argument #1 to 'sleep'", "number expected, got string"},
      function() lasync.sleep("soon") end)
    util.raises({"bad argument #1 to 'sleep'", "number expected, got no value"},
      function() lasync.sleep() end)
    util.raises({"bad argument #1 to 'sleep'", "number expected, got nil"},
      function() lasync.sleep(nil, 1) end)
    util.raises({"bad argument #1 to 'sleep'", "number other than NaN expected"},
      function() lasync.sleep(0 / 0) end)
  end))

  it("sleep outside a task says so", function()
    util.raises({"sleep called outside a task"}, lasync.sleep, 0)
    util.raises({"sleep called outside a task"}, lasync.sleep, 1)
  end)

  it("sleep returns its extra arguments, nils included", helper.async(function()
    assert.are.same({nil, 2, nil, n = 3}, table.pack(lasync.sleep(0, nil, 2, nil)))
    assert.are.same({"a", nil, n = 2}, table.pack(lasync.sleep(0.001, "a", nil)))
    assert.are.equal(0, select("#", lasync.sleep(0)))
  end))

  it("await, spawn and run want what they use", helper.async(function()
    util.raises({"bad argument #1 to 'await'", "future expected, got table"},
      function() lasync.await({}) end)
    util.raises({"bad argument #1 to 'spawn'", "function expected, got boolean"},
      function() lasync.spawn(true) end)
    util.raises({"bad argument #1 to 'create_task'", "function expected, got string"},
      function() lasync.create_task("f") end)
  end))

  -- The C checks name the function once, as luaL_argerror does, and say
  -- only what was expected (not "spawn: function expected").
  it("a callable argument's error names the function once", helper.async(function()
    local loop, fut = lasync.get_running_loop(), lasync.Future()
    local calls = {
      spawn = function() lasync.spawn(42) end,
      create_task = function() loop:create_task(42) end,
      call_soon = function() loop:call_soon(42) end,
      call_later = function() loop:call_later(0, 42) end,
      add_done_callback = function() fut:add_done_callback(42) end,
      set_exception_handler = function() loop:set_exception_handler(42) end,
      add_reader = function() loop:add_reader(0, 42) end,
    }
    for _, name in ipairs(sorted_keys(calls)) do
      util.raises({("to '%s' (function expected, got number)"):format(name)}, calls[name])
    end
    fut:cancel()
  end))

  it("functions that need a running loop say so", function()
    for _, name in ipairs {"Future", "spawn", "time", "all_tasks", "get_running_loop"} do
      util.raises({"no running event loop"}, lasync[name])
    end
  end)

  it("is_future and is_task take any value", function()
    for _, v in ipairs {1, "s", {}, true, print} do
      assert.is_false(lasync.is_future(v))
      assert.is_false(lasync.is_task(v))
    end
    assert.is_false(lasync.is_future())
    assert.is_false(lasync.is_task(nil))
  end)

  it("ContextVar and coroutine.wrap check their argument", function()
    util.raises({"bad argument #1 to 'ContextVar'", "string expected, got nil"},
      function() lasync.ContextVar() end)
    util.raises({"bad argument #1 to 'wrap'", "function expected, got nil"},
      function() lasync.coroutine.wrap() end)
  end)
end)
