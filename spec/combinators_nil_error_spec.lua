-- A child that fails with the error value nil (error(nil), error()) is a
-- failure like any other for gather, wait, shield and task_group (on virtual
-- time: helper.virtual).
local lasync = require "lasync"
local core = require "lasync.core"
local helper = require "helper"

local catch = helper.error_of

-- A task that fails with nil after delay seconds.
local function nil_failure(delay)
  return lasync.spawn(function()
    lasync.sleep(delay)
    error(nil)
  end)
end

describe("a child failing with error(nil)", function()
  it("makes gather raise nil at once", helper.virtual(function()
    local gate = lasync.Future()
    local slow = lasync.spawn(function() return gate:await() end)
    local ok, err = pcall(lasync.gather, nil_failure(1), slow)
    assert.is_false(ok)
    assert.is_nil(err)
    assert.is_false(slow:done())
    gate:set_result()
    slow:await()
  end))

  it("leaves a nil in place with return_exceptions", helper.virtual(function()
    local r = lasync.gather({nil_failure(0), lasync.spawn(lasync.sleep, 2, "v")},
                            {return_exceptions = true})
    assert.are.same({n = 2, nil, "v"}, r)
  end))

  it("makes wait return early with FIRST_EXCEPTION", helper.virtual(function()
    local bad, slow = nil_failure(1), lasync.spawn(lasync.sleep, 3600)
    local done, pending = lasync.wait({bad, slow}, {return_when = "FIRST_EXCEPTION"})
    assert.are.same({bad}, done)
    assert.are.same({slow}, pending)
    slow:cancel()
    catch(slow.await, slow)
  end))

  it("fails the shield future with nil", helper.virtual(function()
    local sh = lasync.shield(nil_failure(1))
    local ok, err = pcall(sh.await, sh)
    assert.is_false(ok)
    assert.is_nil(err)
    assert.is_true(sh:done() and not sh:cancelled())
  end))

  it("is listed by a TaskGroupError, counted in errors.n", helper.virtual(function()
    local reached = false
    local err = catch(lasync.task_group, function(tg)
      tg:spawn(function() lasync.sleep(1); error(nil) end)
      tg:spawn(function() lasync.sleep(3600); error("second", 0) end)  -- cancelled
      lasync.sleep(3600)
      reached = true
    end)
    assert.is_true(lasync.TaskGroupError:is(err))
    assert.is_false(reached)
    assert.are.same({n = 1}, err.errors)
  end))
end)

describe("core._future_fail", function()
  -- The combinators tell failure from success by exception()'s count of
  -- values: one (the error, maybe nil) or none.
  it("fails a pending future with any value, nil included", helper.virtual(function()
    local f, good = lasync.Future(), lasync.Future()
    core._future_fail(f, nil)
    good:set_result(nil)
    assert.are.equal(1, select("#", f:exception()))
    assert.are.equal(0, select("#", good:exception()))
    assert.is_nil(catch(f.result, f))
  end))

  it("refuses a done future and a task", helper.virtual(function()
    local f = lasync.Future()
    f:set_result()
    assert.matches("pending future expected", catch(core._future_fail, f, "x"))
    local t = lasync.spawn(lasync.sleep, 0)
    assert.matches("Task's result", catch(core._future_fail, t, "x"))
    t:await()
  end))
end)
