-- docs/reference.md §3: Futures.
local lasync = require "lasync"
local helper = require "helper"
local util = require "core.util"

local function pack(...) return table.pack(...) end

describe("Future creation", function()
  it("lasync.Future() makes a pending future of the running loop", helper.async(function()
    local f = lasync.Future()
    assert.is_true(lasync.is_future(f))
    assert.is_false(lasync.is_task(f))
    assert.is_false(f:done())
    assert.is_false(f:cancelled())
    assert.are.equal(lasync.get_running_loop(), f:get_loop())
    assert.are.equal("<Future pending>", tostring(f))
  end))

  it("lasync.Future() raises without a running loop", function()
    util.raises({"no running event loop"}, lasync.Future)
  end)

  it("loop:create_future() works on a loop that is not running", function()
    local loop = lasync.new_event_loop()
    local f = loop:create_future()
    assert.are.equal(loop, f:get_loop())
    f:set_result(1)
    assert.are.equal(1, f:result())
    util.raises({"bad argument #1 to 'create_future'", "loop expected, got string"},
      function() loop.create_future("x") end)
    loop:close()
  end)

  it("is_future tells futures and tasks from other values", helper.async(function()
    assert.is_true(lasync.is_future(lasync.current_task()))
    for _, v in ipairs {{}, "f", 1, true, print, io.stdout} do
      assert.is_false(lasync.is_future(v))
    end
    assert.is_false(lasync.is_future(nil))
    assert.is_false(lasync.is_future(lasync.get_running_loop():call_soon(type, 1)))
  end))
end)

describe("Future results", function()
  local loop
  before_each(function() loop = lasync.new_event_loop() end)
  after_each(function() loop:close() end)

  it("keeps every value given to set_result, nils included", function()
    local f = loop:create_future()
    f:set_result(nil, 1, nil, "x", nil)
    assert.are.same({nil, 1, nil, "x", nil, n = 5}, pack(f:result()))
    assert.is_true(f:done())
    assert.is_false(f:cancelled())
    assert.is_nil(f:exception())
    assert.are.equal("<Future finished>", tostring(f))
  end)

  it("keeps no value, or a single nil, as given", function()
    local f, g = loop:create_future(), loop:create_future()
    f:set_result()
    g:set_result(nil)
    assert.are.equal(0, select("#", f:result()))
    assert.are.equal(1, select("#", g:result()))
  end)

  it("keeps many values", function()
    local f, vals = loop:create_future(), {}
    for i = 1, 500 do vals[i] = i end
    f:set_result(table.unpack(vals))
    assert.are.same(vals, {f:result()})
  end)

  it("returns the same table, not a copy", function()
    local f, t = loop:create_future(), {}
    f:set_result(t)
    assert.are.equal(t, f:result())
    assert.are.equal(t, f:result())
  end)

  it("keeps an error value as it is", function()
    for _, e in ipairs {{}, "a string", 42, lasync.TimeoutError("t"), true} do
      local f = loop:create_future()
      f:set_exception(e)
      assert.are.equal(e, f:exception())
      assert.are.equal(e, util.error_of(f.result, f))
      assert.is_true(f:done())
      assert.is_false(f:cancelled())
      assert.are.equal("<Future finished>", tostring(f))
    end
  end)

  it("raises InvalidStateError when set twice", function()
    local f = loop:create_future()
    f:set_result(1)
    local e1 = util.error_of(f.set_result, f, 2)
    local e2 = util.error_of(f.set_exception, f, "x")
    for _, e in ipairs {e1, e2} do
      assert.is_true(lasync.InvalidStateError:is(e))
      assert.are.equal("InvalidStateError: future is already finished", tostring(e))
    end
    assert.are.equal(1, f:result())
    local g = loop:create_future()
    g:set_exception("first")
    assert.is_true(lasync.InvalidStateError:is(util.error_of(g.set_result, g, 1)))
    assert.are.equal("first", g:exception())
  end)

  it("raises InvalidStateError from a cancelled future's setters", function()
    local f = loop:create_future()
    f:cancel()
    local e = util.error_of(f.set_result, f, 1)
    assert.is_true(lasync.InvalidStateError:is(e))
    assert.are.equal("future is already cancelled", e.message)
    assert.is_true(lasync.InvalidStateError:is(util.error_of(f.set_exception, f, 1)))
  end)

  it("raises InvalidStateError from result() and exception() while pending", function()
    local f = loop:create_future()
    local e1, e2 = util.error_of(f.result, f), util.error_of(f.exception, f)
    assert.is_true(lasync.InvalidStateError:is(e1))
    assert.is_true(lasync.InvalidStateError:is(e2))
    assert.are.equal("result is not set", e1.message)
    assert.are.equal("exception is not set", e2.message)
  end)

  it("rejects nil as an error value", function()
    local f = loop:create_future()
    util.raises({"bad argument #1 to 'set_exception'", "error value expected, got nil"},
      function() f:set_exception(nil) end)
    util.raises({"bad argument #1 to 'set_exception'"},
      function() f:set_exception() end)
    assert.is_false(f:done())
  end)

  it("checks self in every method", function()
    local f = loop:create_future()
    for _, name in ipairs {"set_result", "set_exception", "result", "exception",
                           "done", "cancelled", "cancel", "add_done_callback",
                           "remove_done_callback", "get_loop", "traceback", "await"} do
      util.raises({"future expected, got table"}, f[name], {})
    end
  end)
end)

describe("Future cancellation", function()
  local loop
  before_each(function() loop = lasync.new_event_loop() end)
  after_each(function() loop:close() end)

  it("cancel(msg) cancels a pending future once", function()
    local f = loop:create_future()
    assert.is_true(f:cancel("stop it"))
    assert.is_false(f:cancel("again"))
    assert.is_true(f:cancelled())
    assert.is_true(f:done())
    assert.are.equal("<Future cancelled>", tostring(f))
    for _, m in ipairs {"result", "exception"} do
      local e = util.error_of(f[m], f)
      assert.is_true(lasync.CancelledError:is(e))
      assert.are.equal("stop it", e.message)
      assert.are.equal("CancelledError: stop it", tostring(e))
    end
  end)

  it("cancel() without a message raises a CancelledError without one", function()
    local f = loop:create_future()
    f:cancel()
    local e = util.error_of(f.result, f)
    assert.is_nil(e.message)
    assert.are.equal("CancelledError", tostring(e))
  end)

  it("cancel() on a done future returns false and changes nothing", function()
    local f = loop:create_future()
    f:set_result(3)
    assert.is_false(f:cancel())
    assert.is_false(f:cancelled())
    assert.are.equal(3, f:result())
  end)
end)

describe("Future done callbacks", function()
  it("are scheduled with call_soon, never called at once", helper.async(function()
    local f, calls = lasync.Future(), {}
    f:add_done_callback(function(fut) calls[#calls + 1] = fut end)
    f:set_result(1)
    assert.are.same({}, calls)
    lasync.sleep(0)
    assert.are.same({f}, calls)
  end))

  it("run in the order they were added, each once", helper.async(function()
    local f, log = lasync.Future(), {}
    for i = 1, 5 do f:add_done_callback(function() log[#log + 1] = i end) end
    f:set_exception("e")
    lasync.sleep(0)
    lasync.sleep(0)
    assert.are.same({1, 2, 3, 4, 5}, log)
    assert.are.equal("e", f:exception())
  end))

  it("run on cancellation too", helper.async(function()
    local f, log = lasync.Future(), {}
    f:add_done_callback(function(fut) log[#log + 1] = fut:cancelled() end)
    f:cancel()
    lasync.sleep(0)
    assert.are.same({true}, log)
  end))

  it("added to a done future are scheduled, not called at once", helper.async(function()
    local f, log = lasync.Future(), {}
    f:set_result(1)
    f:add_done_callback(function(fut) log[#log + 1] = fut:result() end)
    assert.are.same({}, log)
    lasync.sleep(0)
    assert.are.same({1}, log)
  end))

  it("may be callable tables", helper.async(function()
    local f, log = lasync.Future(), {}
    f:add_done_callback(setmetatable({}, {__call = function(_, fut)
      log[#log + 1] = fut
    end}))
    f:set_result()
    lasync.sleep(0)
    assert.are.same({f}, log)
  end))

  it("are removed by remove_done_callback, which counts them", helper.async(function()
    local f, log = lasync.Future(), {}
    local function a() log[#log + 1] = "a" end
    local function b() log[#log + 1] = "b" end
    local function c() log[#log + 1] = "c" end
    f:add_done_callback(a)
    f:add_done_callback(b)
    f:add_done_callback(a)
    f:add_done_callback(c)
    f:add_done_callback(a)
    assert.are.equal(3, f:remove_done_callback(a))
    assert.are.equal(0, f:remove_done_callback(a))
    assert.are.equal(0, f:remove_done_callback(print))
    f:add_done_callback(a)
    f:set_result()
    lasync.sleep(0)
    assert.are.same({"b", "c", "a"}, log)
  end))

  it("removing the first one keeps the order of the others", helper.async(function()
    local f, log = lasync.Future(), {}
    local function a() log[#log + 1] = "a" end
    local function b() log[#log + 1] = "b" end
    f:add_done_callback(a)
    f:add_done_callback(b)
    assert.are.equal(1, f:remove_done_callback(a))
    f:add_done_callback(a)
    f:set_result()
    lasync.sleep(0)
    assert.are.same({"b", "a"}, log)
  end))

  it("that raise are reported, and the others still run", helper.async(function()
    local reports = helper.reports()
    local f, log, e = lasync.Future(), {}, {}
    f:add_done_callback(function() error(e) end)
    f:add_done_callback(function() log[#log + 1] = "second" end)
    f:set_result()
    lasync.sleep(0)
    assert.are.same({"second"}, log)
    assert.are.equal(1, #reports)
    assert.are.equal(e, reports[1].exception)
  end))

  it("check their arguments", helper.async(function()
    local f = lasync.Future()
    util.raises({"bad argument #1 to 'add_done_callback'", "function expected, got number"},
      function() f:add_done_callback(3) end)
    util.raises({"bad argument #1 to 'remove_done_callback'", "value expected"},
      function() f:remove_done_callback() end)
  end))
end)

describe("Future await", function()
  it("returns all the results inside a task", helper.async(function()
    local f = lasync.Future()
    lasync.get_running_loop():call_soon(f.set_result, f, 1, nil, 3, nil)
    assert.are.same({1, nil, 3, nil, n = 4}, pack(f:await()))
    assert.are.same({1, nil, 3, nil, n = 4}, pack(lasync.await(f)))
  end))

  it("raises the error value itself", helper.async(function()
    local f, e = lasync.Future(), {}
    lasync.get_running_loop():call_later(0.001, f.set_exception, f, e)
    assert.are.equal(e, util.error_of(f.await, f))
    assert.are.equal(e, util.error_of(lasync.await, f))
  end))

  it("raises CancelledError with the message for a cancelled future", helper.async(function()
    local f = lasync.Future()
    lasync.get_running_loop():call_soon(f.cancel, f, "gone")
    local e = util.error_of(f.await, f)
    assert.is_true(lasync.CancelledError:is(e))
    assert.are.equal("gone", e.message)
    assert.is_false(lasync.current_task():cancelled())
  end))

  it("does not suspend on a done future", helper.async(function()
    local f, ran = lasync.Future(), false
    f:set_result("now")
    lasync.get_running_loop():call_soon(function() ran = true end)
    assert.are.equal("now", f:await())
    assert.is_false(ran)
    local g = lasync.Future()
    g:set_exception("bad")
    assert.are.equal("bad", util.error_of(g.await, g))
    assert.is_false(ran)
  end))

  it("raises outside a task, whether the future is done or not", function()
    local loop = lasync.new_event_loop()
    local f, g = loop:create_future(), loop:create_future()
    g:set_result(1)
    util.raises({"await called outside a task"}, f.await, f)
    util.raises({"await called outside a task"}, g.await, g)
    util.raises({"await called outside a task"}, lasync.await, g)
    loop:call_soon(function()
      util.raises({"await called outside a task"}, g.await, g)
      loop:stop()
    end)
    loop:run_forever()
    loop:close()
  end)

  it("checks its argument", helper.async(function()
    util.raises({"bad argument #1 to 'await'", "future expected, got number"},
      function() lasync.await(3) end)
    util.raises({"bad argument #1 to 'await'", "future expected, got no value"},
      function() lasync.await() end)
  end))

  it("of many tasks on one future wakes them all in order", helper.async(function()
    local f, log = lasync.Future(), {}
    local ts = {}
    for i = 1, 3 do
      ts[i] = lasync.spawn(function()
        local v = f:await()
        log[#log + 1] = {i, v}
      end)
    end
    lasync.sleep(0)
    f:set_result("v")
    for i = 1, 3 do ts[i]:await() end
    assert.are.same({{1, "v"}, {2, "v"}, {3, "v"}}, log)
  end))
end)

describe("Future traceback", function()
  it("is nil for a plain future and for a task that succeeded", helper.async(function()
    local f = lasync.Future()
    f:set_exception("x")
    assert.is_nil(f:traceback())
    assert.are.equal("x", f:exception())
    local t = lasync.spawn(function() return 1 end)
    t:await()
    assert.is_nil(t:traceback())
  end))

  it("of a failed task shows the failure point", helper.async(function()
    local function fails() error("deep failure") end
    local t = lasync.spawn(function()
      lasync.sleep(0)
      fails()
    end)
    local err = util.error_of(t.await, t)
    assert.is_truthy(err:find("deep failure", 1, true))
    local tb = t:traceback()
    assert.is_truthy(tb:find("deep failure", 1, true))
    assert.is_truthy(tb:find("stack traceback", 1, true))
    assert.is_truthy(tb:find("in upvalue 'fails'", 1, true)
                     or tb:find("in local 'fails'", 1, true)
                     or tb:find("'fails'", 1, true))
  end))

  it("of a task that failed with a table error is still there", helper.async(function()
    local e = {}
    local t = lasync.spawn(function() error(e) end)
    assert.are.equal(e, util.error_of(t.await, t))
    assert.is_truthy(t:traceback():find("future_spec.lua", 1, true))
  end))
end)

describe("helper.futures_made", function()
  it("counts every Future and Task C makes, however made", helper.async(function()
    local loop, f = lasync.get_running_loop(), lasync.Future()
    assert.are.equal(5, helper.futures_made(function()
      for _ = 1, 3 do loop:create_future() end
      lasync.Future()
      lasync.spawn(f.await, f)
    end))
    assert.are.equal(0, helper.futures_made(function() end))
    f:set_result()
    helper.settle()
  end))
end)
