-- lasync.wait, lasync.wait_for and lasync.as_completed (docs/reference.md §5),
-- on virtual time (helper.virtual): the delays are seconds and take none.
local lasync = require "lasync"
local helper = require "helper"

local catch = helper.error_of

local function is_timeout(err)
  return lasync.TimeoutError:is(err)
end

local function sleeper(delay, ...)
  return lasync.spawn(lasync.sleep, delay, ...)
end

local function failer(delay, err)
  return lasync.spawn(function()
    lasync.sleep(delay)
    error(err, 0)
  end)
end

-- A task that sleeps long, and on cancellation cleans up for `cleanup`
-- seconds, then either re-raises or returns `absorb` if given.
local function stubborn(log, cleanup, absorb)
  return function()
    local ok, err = pcall(lasync.sleep, 3600)
    log.cancelled = not ok
    lasync.sleep(cleanup)
    log.cleaned = true
    if absorb ~= nil then return absorb end
    error(err, 0)
  end
end

describe("lasync.wait", function()
  it("waits for all by default and keeps the list order", helper.virtual(function()
    local a, b = sleeper(4, "a"), sleeper(1, "b")
    local done, pending = lasync.wait({a, b})
    assert.are.same({a, b}, done)
    assert.are.same({}, pending)
  end))

  it("returns at the first completion with FIRST_COMPLETED", helper.virtual(function()
    local slow, fast = lasync.Future(), sleeper(1)
    local done, pending = lasync.wait({slow, fast}, {return_when = "FIRST_COMPLETED"})
    assert.are.same({fast}, done)
    assert.are.same({slow}, pending)
    assert.is_false(slow:done())
  end))

  it("returns at the first error with FIRST_EXCEPTION", helper.virtual(function()
    local slow, bad = lasync.Future(), failer(2, "bad")
    local done, pending = lasync.wait({slow, bad}, {return_when = "FIRST_EXCEPTION"})
    assert.are.same({bad}, done)
    assert.are.same({slow}, pending)
    assert.are.equal("bad", bad:exception())
  end))

  it("does not count a cancellation as an error with FIRST_EXCEPTION",
    helper.virtual(function()
      local reports = helper.reports()
      local slow, gone = sleeper(10), sleeper(3600)
      lasync.get_running_loop():call_soon(function() gone:cancel() end)
      local done, pending = lasync.wait({gone, slow}, {return_when = "FIRST_EXCEPTION"})
      assert.are.same({gone, slow}, done)
      assert.are.same({}, pending)
      assert.are.same({}, reports)
    end))

  it("waits for all with FIRST_EXCEPTION when nothing fails", helper.virtual(function()
    local a, b = sleeper(1), sleeper(3)
    local done = lasync.wait({a, b}, {return_when = "FIRST_EXCEPTION"})
    assert.are.equal(2, #done)
  end))

  it("returns at the timeout without cancelling anything", helper.virtual(function()
    local gate = lasync.Future()
    local slow, fast = lasync.spawn(gate.await, gate), sleeper(1)
    local earlier = helper.after(9)
    local done, pending = lasync.wait({slow, fast}, {timeout = 10})
    assert.is_true(earlier:is_set())
    assert.are.same({fast}, done)
    assert.are.same({slow}, pending)
    assert.is_false(slow:done())
    slow:cancel()
  end))

  it("returns futures already done", helper.virtual(function()
    local f = lasync.Future()
    f:set_result(1)
    local done, pending = lasync.wait({f})
    assert.are.same({f}, done)
    assert.are.same({}, pending)
  end))

  it("propagates a cancellation of the waiting task, cancelling nothing else",
    helper.virtual(function()
      local f = lasync.Future()
      local waiter = lasync.spawn(lasync.wait, {f}, {timeout = 1})
      lasync.sleep(1)
      waiter:cancel()
      assert.is_true(lasync.CancelledError:is(catch(waiter.await, waiter)))
      assert.is_false(f:done())
    end))

  describe("misuse", function()
    it("rejects an empty list", helper.virtual(function()
      assert.matches("bad argument #1 to 'wait' %(list of futures is empty%)",
                     catch(lasync.wait, {}))
    end))

    it("rejects what is not a list of futures", helper.virtual(function()
      assert.matches("bad argument #1 to 'wait' %(list %(future or task%) expected, got nil%)",
                     catch(lasync.wait, nil))
      assert.matches("bad argument #1 to 'wait' %(item 1: future or task expected, got function%)",
                     catch(lasync.wait, {function() end}))
    end))

    it("checks the options", helper.virtual(function()
      local f = lasync.Future()
      f:set_result()
      assert.matches("opts.timeout must be a number, got string",
                     catch(lasync.wait, {f}, {timeout = "1"}))
      assert.matches("bad argument #2 to 'wait' %(opts.return_when must be \"ALL_COMPLETED\", "
                     .. "\"FIRST_COMPLETED\" or \"FIRST_EXCEPTION\", got \"FIRST\"%)",
                     catch(lasync.wait, {f}, {return_when = "FIRST"}))
      assert.matches("unknown option 'timout'", catch(lasync.wait, {f}, {timout = 1}))
    end))

    it("raises outside a task", function()
      local f = lasync.new_event_loop():create_future()
      assert.matches("wait called outside a task", catch(lasync.wait, {f}))
    end)
  end)
end)

describe("lasync.wait_for", function()
  it("returns every result of a task, a future or a function", helper.virtual(function()
    local r = table.pack(lasync.wait_for(sleeper(1, 1, nil, 3), 60))
    assert.are.same({n = 3, 1, nil, 3}, r)
    local f = lasync.Future()
    lasync.get_running_loop():call_soon(function() f:set_result("f", "g") end)
    assert.are.same({"f", "g"}, {lasync.wait_for(f, 60)})
    assert.are.equal("fn", lasync.wait_for(function() lasync.sleep(1); return "fn" end, 60))
  end))

  it("waits forever with a nil timeout", helper.virtual(function()
    assert.are.equal("late", lasync.wait_for(sleeper(10, "late"), nil))
  end))

  it("propagates the error of aw", helper.virtual(function()
    local boom = {}
    assert.are.equal(boom, catch(lasync.wait_for, failer(1, boom), 60))
  end))

  it("on timeout cancels a task and waits for its cleanup", helper.virtual(function()
    local log = {}
    local t = lasync.spawn(stubborn(log, 5))
    local err = catch(lasync.wait_for, t, 5)
    assert.is_true(is_timeout(err))
    assert.is_true(log.cleaned)
    assert.is_true(t:cancelled())
    assert.are.equal(0, lasync.current_task():cancelling())
  end))

  it("on timeout cancels a function run in the current task", helper.virtual(function()
    local log = {}
    local me
    local err = catch(lasync.wait_for, function()
      me = lasync.current_task()
      return stubborn(log, 2)()
    end, 5)
    assert.is_true(is_timeout(err))
    assert.are.equal(lasync.current_task(), me)
    assert.is_true(log.cancelled and log.cleaned)
  end))

  it("on timeout cancels a future", helper.virtual(function()
    local f = lasync.Future()
    assert.is_true(is_timeout(catch(lasync.wait_for, f, 2)))
    assert.is_true(f:cancelled())
  end))

  it("returns what aw returns after absorbing the cancellation", helper.virtual(function()
    local log = {}
    assert.are.equal("absorbed", lasync.wait_for(lasync.spawn(stubborn(log, 0, "absorbed")), 2))
    assert.are.equal("kept", lasync.wait_for(stubborn(log, 0, "kept"), 2))
    lasync.sleep(5)  -- no cancellation is left pending on this task
  end))

  it("propagates another error raised after the cancellation", helper.virtual(function()
    local t = lasync.spawn(function()
      pcall(lasync.sleep, 3600)
      error("cleanup failed", 0)
    end)
    assert.are.equal("cleanup failed", catch(lasync.wait_for, t, 2))
  end))

  it("with timeout <= 0 returns the results of a done future", helper.virtual(function()
    local f = lasync.Future()
    f:set_result(1, 2)
    assert.are.same({1, 2}, {lasync.wait_for(f, 0)})
  end))

  it("with timeout <= 0 never starts a function", helper.virtual(function()
    local ran = false
    assert.is_true(is_timeout(catch(lasync.wait_for, function() ran = true end, -1)))
    lasync.sleep(0)
    assert.is_false(ran)
  end))

  it("with timeout <= 0 cancels a pending task and waits for it", helper.virtual(function()
    local log = {}
    local t = lasync.spawn(stubborn(log, 2))
    lasync.sleep(0)
    assert.is_true(is_timeout(catch(lasync.wait_for, t, 0)))
    assert.is_true(log.cleaned)
    local t2 = lasync.spawn(stubborn(log, 0, "absorbed"))
    lasync.sleep(0)
    assert.are.equal("absorbed", lasync.wait_for(t2, 0))
  end))

  it("with timeout <= 0 raises CancelledError for a future already cancelled",
    helper.virtual(function()
      local f = lasync.Future()
      f:cancel()
      assert.is_true(lasync.CancelledError:is(catch(lasync.wait_for, f, 0)))
    end))

  it("lets a cancellation of the waiting task propagate as CancelledError",
    helper.virtual(function()
      local inner = sleeper(1)
      local waiter = lasync.spawn(lasync.wait_for, inner, 500)
      lasync.sleep(1)
      waiter:cancel()
      local err = catch(waiter.await, waiter)
      assert.is_true(lasync.CancelledError:is(err))
      assert.is_true(inner:cancelled())
    end))

  describe("misuse", function()
    it("names bad arguments", helper.virtual(function()
      assert.matches("bad argument #1 to 'wait_for' %(future, task or function expected, got number%)",
                     catch(lasync.wait_for, 1, 1))
      assert.matches("bad argument #2 to 'wait_for' %(number or nil expected, got string%)",
                     catch(lasync.wait_for, function() end, "1"))
    end))

    it("raises outside a task", function()
      assert.matches("wait_for called outside a task",
                     catch(lasync.wait_for, function() end, 1))
    end)
  end)
end)

describe("lasync.as_completed", function()
  it("yields the futures in completion order", helper.virtual(function()
    local a, b, c = sleeper(12, "a"), sleeper(2, "b"), sleeper(6, "c")
    local order, values = {}, {}
    for f in lasync.as_completed({a, b, c}) do
      assert.is_true(f:done())
      order[#order + 1] = f
      values[#values + 1] = f:await()
    end
    assert.are.same({b, c, a}, order)
    assert.are.same({"b", "c", "a"}, values)
  end))

  it("spawns functions and yields futures already done first", helper.virtual(function()
    local f = lasync.Future()
    f:set_result("done")
    local values = {}
    for g in lasync.as_completed({function() lasync.sleep(1); return "fn" end, f}) do
      values[#values + 1] = g:await()
    end
    assert.are.same({"done", "fn"}, values)
  end))

  it("yields a failed future whose await raises", helper.virtual(function()
    for f in lasync.as_completed({failer(1, "bad")}) do
      assert.are.equal("bad", catch(f.await, f))
    end
  end))

  it("yields a future listed twice once, and spawns each function", helper.virtual(function()
    local f, calls = lasync.spawn(lasync.sleep, 1, "f"), 0
    local function fn() calls = calls + 1 end
    local got = {}
    for g in lasync.as_completed({f, fn, f, fn}) do got[#got + 1] = g end
    assert.are.equal(3, #got)
    assert.are.equal(2, calls)
    assert.are.equal(f, got[3])
  end))

  it("iterates zero times over an empty list", helper.virtual(function()
    for _ in lasync.as_completed({}, 1) do error("unreachable") end
  end))

  it("raises TimeoutError after yielding the futures done in time", helper.virtual(function()
    local slow, fast = lasync.Future(), lasync.Future()
    fast:set_result("fast")
    local got, earlier = {}, helper.after(4)
    local err = catch(function()
      for f in lasync.as_completed({slow, fast}, 5) do got[#got + 1] = f:await() end
    end)
    assert.is_true(is_timeout(err))
    assert.is_true(earlier:is_set())
    assert.are.same({"fast"}, got)
    assert.is_false(slow:done())
  end))

  it("ignores futures done after the timeout", helper.virtual(function()
    local a, b = lasync.Future(), lasync.Future()
    a:set_result("a")
    local got = {}
    local err = catch(function()
      for f in lasync.as_completed({a, b}, 2) do
        got[#got + 1] = f:await()
        lasync.sleep(4)  -- the timeout passes
        b:set_result("b")
        lasync.sleep(0)  -- b's done callbacks run
      end
    end)
    assert.is_true(is_timeout(err))
    assert.are.same({"a"}, got)
  end))

  it("drops its callbacks when the loop breaks early", helper.virtual(function()
    local a, b = lasync.Future(), lasync.Future()
    a:set_result()
    local states = setmetatable({}, {__mode = "k"})
    do
      local iter, st, ctl, closing = lasync.as_completed({a, b})
      states[st] = true
      for _ in iter, st, ctl, closing do break end  -- luacheck: ignore 512
    end
    collectgarbage()
    collectgarbage()
    assert.is_nil(next(states))  -- b, still pending, no longer holds it
    assert.is_false(b:done())
  end))

  describe("misuse", function()
    it("names bad arguments", helper.virtual(function()
      assert.matches("bad argument #1 to 'as_completed' %(list %(future, task or function%) expected, got string%)",
                     catch(lasync.as_completed, "x"))
      assert.matches("bad argument #1 to 'as_completed' %(item 1: future, task or function expected, got boolean%)",
                     catch(lasync.as_completed, {true}))
      assert.matches("bad argument #2 to 'as_completed' %(number or nil expected, got table%)",
                     catch(lasync.as_completed, {}, {}))
    end))
  end)
end)
