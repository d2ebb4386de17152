-- lasync.gather and lasync.ensure_future (docs/reference.md §5), on virtual
-- time (helper.virtual): the delays are seconds and take none.
local lasync = require "lasync"
local helper = require "helper"

local catch = helper.error_of

local function after(delay, ...)
  local values = table.pack(...)
  return function()
    lasync.sleep(delay)
    return table.unpack(values, 1, values.n)
  end
end

local fail_after = helper.fail_after

describe("lasync.gather", function()
  it("returns the first value of each argument in argument order, nils included",
    helper.virtual(function()
      local f = lasync.Future()
      lasync.get_running_loop():call_later(4, function() f:set_result(1, 2) end)
      local t = lasync.spawn(after(2, "c", "extra"))
      local r = table.pack(lasync.gather(after(6, nil), f, t, after(1, nil, 9)))
      assert.are.equal(4, r.n)
      assert.is_nil(r[1])
      assert.are.equal(1, r[2])
      assert.are.equal("c", r[3])
      assert.is_nil(r[4])
    end))

  it("runs a function argument as a task of its own", helper.virtual(function()
    local me = lasync.current_task()
    local child = lasync.gather(function() return lasync.current_task() end)
    assert.is_true(lasync.is_task(child))
    assert.are_not.equal(me, child)
  end))

  it("returns nothing for no arguments and {n = 0} for an empty list",
    helper.virtual(function()
      assert.are.equal(0, select("#", lasync.gather()))
      assert.are.same({n = 0}, lasync.gather({}))
    end))

  it("completes at once when every child is already done", helper.virtual(function()
    local f = lasync.Future()
    f:set_result(5)
    local ran = false
    local t = lasync.spawn(function() ran = true end)
    assert.are.equal(5, lasync.gather(f))
    assert.is_false(ran)
    t:await()
  end))

  it("accepts the same future twice", helper.virtual(function()
    local f = lasync.Future()
    lasync.get_running_loop():call_soon(function() f:set_result("v") end)
    local a, b = lasync.gather(f, f)
    assert.are.equal("v", a)
    assert.are.equal("v", b)
  end))

  it("raises the first error at once while the others keep running",
    helper.virtual(function()
      local boom, gate = {}, lasync.Future()
      local slow = lasync.spawn(function() return gate:await() end)
      local err = catch(lasync.gather, fail_after(2, boom), slow)
      assert.are.equal(boom, err)
      assert.is_false(slow:done())
      gate:set_result("slow")
      assert.are.equal("slow", slow:await())
    end))

  it("raises a string error as it is", helper.virtual(function()
    assert.are.equal("plain", catch(lasync.gather, fail_after(0, "plain")))
  end))

  it("retrieves the errors of the children that fail after the first",
    helper.virtual(function()
      local reports = helper.reports()
      catch(lasync.gather, fail_after(1, "first"), fail_after(3, "second"))
      lasync.sleep(10)
      collectgarbage()
      collectgarbage()
      assert.are.equal(0, #reports)
    end))

  it("raises CancelledError when a child is cancelled", helper.virtual(function()
    local t = lasync.spawn(lasync.sleep, 3600)
    lasync.get_running_loop():call_soon(function() t:cancel() end)
    assert.is_true(lasync.CancelledError:is(catch(lasync.gather, t)))
  end))

  describe("cancelled", function()
    it("cancels every child with the message", helper.virtual(function()
      local a, b = lasync.spawn(lasync.sleep, 3600), lasync.Future()
      local waiter = lasync.spawn(lasync.gather, a, b)
      lasync.sleep(1)
      waiter:cancel("stop")
      local err = catch(waiter.await, waiter)
      assert.is_true(lasync.CancelledError:is(err))
      assert.is_true(waiter:cancelled())
      assert.is_true(a:cancelled())
      assert.is_true(b:cancelled())
      assert.are.equal("stop", catch(a.result, a).message)
    end))

    it("waits for the children to finish before raising", helper.virtual(function()
      local cleaned = false
      local child = lasync.spawn(function()
        local ok, err = pcall(lasync.sleep, 3600)
        assert(not ok)
        lasync.sleep(5)
        cleaned = true
        error(err, 0)
      end)
      local seen
      local waiter = lasync.spawn(function()
        local ok, err = pcall(lasync.gather, child)
        seen = {ok = ok, cleaned = cleaned, err = err}
        error(err, 0)
      end)
      lasync.sleep(1)
      waiter:cancel()
      catch(waiter.await, waiter)
      assert.is_false(seen.ok)
      assert.is_true(seen.cleaned)
      assert.is_true(lasync.CancelledError:is(seen.err))
    end))

    it("raises CancelledError even when a child absorbs it", helper.virtual(function()
      local child = lasync.spawn(function()
        pcall(lasync.sleep, 3600)
        return "absorbed"
      end)
      local waiter = lasync.spawn(lasync.gather, child)
      lasync.sleep(1)
      waiter:cancel()
      assert.is_true(lasync.CancelledError:is(catch(waiter.await, waiter)))
      assert.are.equal("absorbed", child:await())
    end))

    it("raises CancelledError with return_exceptions too", helper.virtual(function()
      local child = lasync.spawn(lasync.sleep, 3600)
      local waiter = lasync.spawn(lasync.gather, {child}, {return_exceptions = true})
      lasync.sleep(1)
      waiter:cancel()
      assert.is_true(lasync.CancelledError:is(catch(waiter.await, waiter)))
      assert.is_true(child:cancelled())
    end))
  end)

  describe("with a list", function()
    it("returns a table of first values with n", helper.virtual(function()
      local r = lasync.gather({after(3, "a", "x"), after(1, nil), after(0, "c")})
      assert.are.same({n = 3, "a", nil, "c"}, r)
    end))

    it("honours list.n for trailing nil results", helper.virtual(function()
      local r = lasync.gather({n = 2, after(0, 1), after(0, nil)})
      assert.are.equal(2, r.n)
      assert.are.equal(1, r[1])
    end))

    it("raises the first error without return_exceptions", helper.virtual(function()
      assert.are.equal("bad", catch(lasync.gather, {fail_after(0, "bad"), after(0, 1)}))
    end))

    it("puts errors and cancellations in place with return_exceptions",
      helper.virtual(function()
        local boom = {}
        local cancelled = lasync.spawn(lasync.sleep, 3600)
        lasync.get_running_loop():call_soon(function() cancelled:cancel("why") end)
        local r = lasync.gather({fail_after(1, boom), cancelled, after(2, "ok")},
                                {return_exceptions = true})
        assert.are.equal(3, r.n)
        assert.are.equal(boom, r[1])
        assert.is_true(lasync.CancelledError:is(r[2]))
        assert.are.equal("why", r[2].message)
        assert.are.equal("ok", r[3])
      end))
  end)

  describe("misuse", function()
    it("names a bad argument and starts no task", helper.virtual(function()
      local before = #lasync.all_tasks()
      local err = catch(function() lasync.gather(after(0, 1), 42) end)
      assert.matches("bad argument #2 to 'gather' %(future, task or function expected, got number%)",
                     err)
      assert.matches("combinators_gather_spec%.lua:%d+:", err)
      assert.are.equal(before, #lasync.all_tasks())
    end))

    it("names a bad item of the list", helper.virtual(function()
      assert.matches("bad argument #1 to 'gather' %(item 2: future, task or function expected, got string%)",
                     catch(lasync.gather, {after(0, 1), "x"}))
    end))

    it("checks the options", helper.virtual(function()
      assert.matches("bad argument #2 to 'gather' %(table of options or nil expected, got number%)",
                     catch(lasync.gather, {}, 5))
      assert.matches("bad argument #2 to 'gather' %(unknown option 'return_exception'%)",
                     catch(lasync.gather, {}, {return_exception = true}))
      assert.matches("opts.return_exceptions must be a boolean, got string",
                     catch(lasync.gather, {}, {return_exceptions = "yes"}))
    end))

    it("raises outside a task", function()
      assert.matches("gather called outside a task",
                     catch(lasync.gather, function() end))
    end)
  end)
end)

describe("lasync.ensure_future", function()
  it("returns a future or a task itself", helper.virtual(function()
    local f, t = lasync.Future(), lasync.spawn(function() end)
    assert.are.equal(f, lasync.ensure_future(f))
    assert.are.equal(t, lasync.ensure_future(t))
    t:await()
  end))

  it("spawns a function with its arguments", helper.virtual(function()
    local t = lasync.ensure_future(function(a, b) return a + b end, 2, 3)
    assert.is_true(lasync.is_task(t))
    assert.are.equal(5, t:await())
  end))

  it("names a bad argument", function()
    assert.matches("bad argument #1 to 'ensure_future' %(future, task or function expected, got nil%)",
                   catch(lasync.ensure_future, nil))
  end)
end)
