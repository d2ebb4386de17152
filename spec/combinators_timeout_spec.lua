-- lasync.timeout, lasync.timeout_at and lasync.shield (docs/reference.md §5),
-- on virtual time (helper.virtual): the delays are seconds and take none.
local lasync = require "lasync"
local helper = require "helper"

local catch = helper.error_of

local function is_timeout(err)
  return lasync.TimeoutError:is(err)
end

local is_cancelled = helper.is_cancelled

-- The error fn(...) raises, raised again once recorded in log[key].
local function recording(log, key, fn, ...)
  local ok, err = pcall(fn, ...)
  log[key] = ok and "returned" or err
  if not ok then error(err, 0) end
end

describe("lasync.timeout", function()
  it("returns every result of fn, nils included", helper.virtual(function()
    local r = table.pack(lasync.timeout(100, function(a) return a, nil, 3, nil end, 1))
    assert.are.same({n = 4, 1, nil, 3}, r)
  end))

  it("raises TimeoutError when the deadline passes", helper.virtual(function()
    local earlier = helper.after(4)
    local err = catch(lasync.timeout, 5, lasync.sleep, 3600)
    assert.is_true(is_timeout(err))
    assert.is_true(is_cancelled(err.cause))
    assert.is_true(earlier:is_set())
    assert.are.equal(0, lasync.current_task():cancelling())
    assert.are.equal("on", lasync.sleep(1, "on"))  -- the task goes on
  end))

  it("lets fn clean up before TimeoutError surfaces", helper.virtual(function()
    local cleaned = false
    local err = catch(lasync.timeout, 2, function()
      local _, e = pcall(lasync.sleep, 3600)
      lasync.sleep(2)
      cleaned = true
      error(e, 0)
    end)
    assert.is_true(is_timeout(err))
    assert.is_true(cleaned)
  end))

  it("propagates an error raised inside fn unchanged", helper.virtual(function()
    local boom = {}
    assert.are.equal(boom, catch(lasync.timeout, 1, error, boom))
    assert.are.equal("text", catch(lasync.timeout, 1, error, "text", 0))
  end))

  it("returns what fn returns after absorbing the cancellation", helper.virtual(function()
    local a, b = lasync.timeout(2, function()
      local ok = pcall(lasync.sleep, 3600)
      return "absorbed", ok
    end)
    assert.are.equal("absorbed", a)
    assert.is_false(b)
    assert.are.equal(0, lasync.current_task():cancelling())
  end))

  it("has no deadline when delay is nil", helper.virtual(function()
    assert.are.equal("v", lasync.timeout(nil, lasync.sleep, 5, "v"))
  end))

  it("fires at the first suspension when delay <= 0", helper.virtual(function()
    local ran = false
    assert.is_true(is_timeout(catch(lasync.timeout, 0, function()
      ran = true
      lasync.sleep(3600)
    end)))
    assert.is_true(ran)
    assert.are.equal(7, lasync.timeout(-1, function() return 7 end))
  end))

  it("fires before the task's next step when delay <= 0", helper.virtual(function()
    assert.is_true(is_timeout(catch(lasync.timeout, 0, function()
      lasync.sleep(0)
      return "too late"
    end)))
  end))

  it("cancels its timer on every way out", helper.virtual(function()
    lasync.timeout(3, function() end)
    catch(lasync.timeout, 3, error, "x")
    lasync.sleep(10)  -- would be cancelled by a timer left behind
    assert.are.equal(0, lasync.current_task():cancelling())
  end))

  describe("nested", function()
    it("lets the inner one fire and the outer one go on", helper.virtual(function()
      local log = {}
      local r = lasync.timeout(60, function()
        log.inner = catch(lasync.timeout, 2, lasync.sleep, 3600)
        return "outer ok"
      end)
      assert.are.equal("outer ok", r)
      assert.is_true(is_timeout(log.inner))
    end))

    it("lets the outer one fire through the inner one", helper.virtual(function()
      local log = {}
      local err = catch(lasync.timeout, 2, function()
        recording(log, "inner", lasync.timeout, 60, lasync.sleep, 3600)
      end)
      assert.is_true(is_timeout(err))
      assert.is_true(is_cancelled(log.inner))
      assert.are.equal(0, lasync.current_task():cancelling())
    end))

    it("reports the outer one when both fire together", helper.virtual(function()
      local log = {}
      local when = lasync.time() + 3
      local err = catch(lasync.timeout_at, when, function()
        recording(log, "inner", lasync.timeout_at, when, lasync.sleep, 3600)
      end)
      assert.is_true(is_timeout(err))
      assert.is_true(is_cancelled(log.inner))
      assert.are.equal(0, lasync.current_task():cancelling())
    end))

    it("fires each of several in turn", helper.virtual(function()
      local log = {}
      -- The outer deadline must not come with an inner one (catch would
      -- swallow its cancellation): on virtual time no pause of a loaded
      -- machine brings 500 s near 3.
      local err = catch(lasync.timeout, 500, function()
        for i = 1, 3 do log[i] = catch(lasync.timeout, 1, lasync.sleep, 3600) end
        lasync.sleep(3600)
      end)
      assert.is_true(is_timeout(err))
      for i = 1, 3 do assert.is_true(is_timeout(log[i])) end
    end))
  end)

  describe("with an outside cancellation", function()
    it("never turns it into a TimeoutError", helper.virtual(function()
      local t = lasync.spawn(lasync.timeout, 60, lasync.sleep, 3600)
      lasync.sleep(1)
      t:cancel("from outside")
      local err = catch(t.await, t)
      assert.is_true(is_cancelled(err))
      assert.are.equal("from outside", err.message)
    end))

    it("lets it win when it comes together with the deadline", helper.virtual(function()
      local loop = lasync.get_running_loop()
      local when = loop:time() + 3
      local t = lasync.spawn(lasync.timeout_at, when, lasync.sleep, 3600)
      loop:call_at(when, function() t:cancel() end)
      assert.is_true(is_cancelled(catch(t.await, t)))
      assert.is_true(t:cancelled())
    end))
  end)

  describe("misuse", function()
    it("names bad arguments", helper.virtual(function()
      assert.matches("bad argument #1 to 'timeout' %(number or nil expected, got string%)",
                     catch(lasync.timeout, "1", print))
      assert.matches("bad argument #2 to 'timeout' %(function expected, got nil%)",
                     catch(lasync.timeout, 1))
      assert.matches("bad argument #1 to 'timeout_at' %(number or nil expected, got boolean%)",
                     catch(lasync.timeout_at, true, print))
      assert.matches("bad argument #2 to 'timeout_at' %(function expected, got number%)",
                     catch(lasync.timeout_at, 1, 2))
    end))

    it("raises outside a task", function()
      assert.matches("timeout called outside a task", catch(lasync.timeout, 1, print))
      assert.matches("timeout_at called outside a task", catch(lasync.timeout_at, nil, print))
    end)
  end)
end)

describe("lasync.timeout_at", function()
  it("fires at an absolute loop time", helper.virtual(function()
    local when = lasync.time() + 5
    assert.is_true(is_timeout(catch(lasync.timeout_at, when, lasync.sleep, 3600)))
    assert.is_true(lasync.time() >= when)
  end))

  it("returns the results in time, or without a deadline", helper.virtual(function()
    assert.are.same({1, 2}, {lasync.timeout_at(lasync.time() + 60, lasync.sleep, 0, 1, 2)})
    assert.are.equal("x", lasync.timeout_at(nil, lasync.sleep, 1, "x"))
  end))
end)

describe("lasync.shield", function()
  it("mirrors every result of aw", helper.virtual(function()
    local t = lasync.spawn(lasync.sleep, 1, "a", nil, "c")
    assert.are.same({n = 3, "a", nil, "c"}, table.pack(lasync.shield(t):await()))
  end))

  it("mirrors an error and a cancellation of aw", helper.virtual(function()
    local boom = {}
    local bad = lasync.spawn(function() lasync.sleep(1); error(boom) end)
    local sb = lasync.shield(bad)
    assert.are.equal(boom, catch(sb.await, sb))
    local f = lasync.Future()
    local s = lasync.shield(f)
    f:cancel()
    assert.is_true(is_cancelled(catch(s.await, s)))
  end))

  it("returns aw itself when it is already done", helper.virtual(function()
    local f = lasync.Future()
    f:set_result(1)
    assert.are.equal(f, lasync.shield(f))
  end))

  it("spawns a function", helper.virtual(function()
    assert.are.equal("fn", lasync.shield(function() return "fn" end):await())
  end))

  it("leaves aw running when the shield is cancelled", helper.virtual(function()
    local t = lasync.spawn(lasync.sleep, 5, "kept")
    local s = lasync.shield(t)
    assert.is_true(s:cancel())
    lasync.sleep(0)
    assert.is_false(t:cancelled())
    assert.are.equal("kept", t:await())
  end))

  it("leaves aw running when the awaiting task is cancelled", helper.virtual(function()
    local gate = lasync.Future()
    local t = lasync.spawn(function() return gate:await() end)
    local waiter = lasync.spawn(function() return lasync.shield(t):await() end)
    lasync.sleep(1)
    waiter:cancel()
    assert.is_true(is_cancelled(catch(waiter.await, waiter)))
    assert.is_false(t:done())
    gate:set_result("kept")
    assert.are.equal("kept", t:await())
  end))

  it("keeps wait_for from cancelling aw", helper.virtual(function()
    local t = lasync.spawn(lasync.sleep, 10, "kept")
    assert.is_true(is_timeout(catch(lasync.wait_for, lasync.shield(t), 1)))
    assert.are.equal("kept", t:await())
  end))

  it("leaves a later error of aw to be reported once the shield is cancelled",
    helper.virtual(function()
      local reports = helper.reports()
      local t = lasync.spawn(function() lasync.sleep(1); error("late") end)
      lasync.shield(t):cancel()
      t = nil  -- luacheck: ignore 311
      lasync.sleep(5)
      collectgarbage()
      collectgarbage()
      assert.are.equal(1, #reports)
      assert.matches("late", reports[1].exception)
    end))

  it("retrieves an error of aw that races the shield's cancellation",
    helper.virtual(function()
      local reports = helper.reports()
      local f = lasync.Future()
      local s = lasync.shield(f)
      s:cancel()
      f:set_exception("raced")
      lasync.sleep(0)
      f, s = nil, nil  -- luacheck: ignore 311
      collectgarbage()
      collectgarbage()
      assert.are.same({}, reports)
    end))

  it("names a bad argument", function()
    assert.matches("bad argument #1 to 'shield' %(future, task or function expected, got nil%)",
                   catch(lasync.shield))
  end)
end)
