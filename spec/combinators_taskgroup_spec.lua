-- lasync.task_group (docs/reference.md §5), on virtual time (helper.virtual):
-- the delays are seconds and take none.
local lasync = require "lasync"
local helper = require "helper"

local catch = helper.error_of

local is_cancelled = helper.is_cancelled

-- A child that sleeps long; on cancellation it cleans up for a while and
-- records it in log[name] before letting the cancellation go on.
local function stubborn(log, name)
  return function()
    local ok, err = pcall(lasync.sleep, 3600)
    assert(not ok)
    lasync.sleep(3)
    log[name] = "cleaned"
    error(err, 0)
  end
end

local fail_after = helper.fail_after

describe("lasync.task_group", function()
  it("returns the body's results once every child finished", helper.virtual(function()
    local t1, t2
    local r = table.pack(lasync.task_group(function(tg)
      t1 = tg:spawn(lasync.sleep, 5, "one")
      t2 = tg:create_task(function(a, b) return a .. b end, "t", "wo")
      return "a", nil, "c"
    end))
    assert.are.same({n = 3, "a", nil, "c"}, r)
    assert.is_true(t1:done() and t2:done())
    assert.are.equal("one", t1:result())
    assert.are.equal("two", t2:result())
  end))

  it("runs the body in the current task", helper.virtual(function()
    local me = lasync.current_task()
    assert.are.equal(me, lasync.task_group(function() return lasync.current_task() end))
  end))

  it("accepts children spawned while it waits for the others", helper.virtual(function()
    local late
    lasync.task_group(function(tg)
      tg:spawn(function()
        lasync.sleep(1)
        late = tg:spawn(lasync.sleep, 2, "late")
      end)
    end)
    assert.are.equal("late", late:result())
  end))

  it("does not count a cancelled child as an error", helper.virtual(function()
    assert.are.equal("fine", lasync.task_group(function(tg)
      local t = tg:spawn(lasync.sleep, 3600)
      lasync.sleep(0)
      t:cancel()
      return "fine"
    end))
  end))

  describe("when a child fails", function()
    it("cancels the body and the other children, then raises TaskGroupError",
      helper.virtual(function()
        local boom, log, other = {}, {}, nil
        local err = catch(lasync.task_group, function(tg)
          other = tg:spawn(stubborn(log, "other"))
          tg:spawn(fail_after(2, boom))
          local ok, e = pcall(lasync.sleep, 3600)
          log.body = ok and "finished" or e
          error(e, 0)
        end)
        assert.is_true(lasync.TaskGroupError:is(err))
        assert.are.same({n = 1, boom}, err.errors)
        assert.matches("1 error", tostring(err))
        assert.is_true(is_cancelled(log.body))
        assert.are.equal("cleaned", log.other)
        assert.is_true(other:cancelled())
        assert.are.equal(0, lasync.current_task():cancelling())
        assert.are.equal("on", lasync.sleep(1, "on"))  -- the task goes on
      end))

    it("collects the errors of every failing child", helper.virtual(function()
      local err = catch(lasync.task_group, function(tg)
        -- sleep(0): both fail in one iteration, whatever the machine's load
        tg:spawn(fail_after(0, "a"))
        tg:spawn(fail_after(0, "b"))
      end)
      assert.are.same({n = 2, "a", "b"}, err.errors)
      assert.matches("2 errors", err.message)
    end))

    it("fails while the body has already returned", helper.virtual(function()
      local log = {}
      local err = catch(lasync.task_group, function(tg)
        tg:spawn(stubborn(log, "other"))
        tg:spawn(fail_after(2, "late"))
        return "body done"
      end)
      assert.are.same({n = 1, "late"}, err.errors)
      assert.are.equal("cleaned", log.other)
      assert.are.equal(0, lasync.current_task():cancelling())
      lasync.sleep(1)
    end))

    it("refuses new children while it shuts down", helper.virtual(function()
      local refused
      catch(lasync.task_group, function(tg)
        tg:spawn(fail_after(0, "x"))
        pcall(lasync.sleep, 3600)
        refused = catch(tg.spawn, tg, print)
      end)
      assert.matches("task group is shutting down", refused)
    end))

    it("keeps a cancellation from outside pending", helper.virtual(function()
      local parent
      parent = lasync.spawn(function()
        local err = catch(lasync.task_group, function(tg)
          tg:spawn(function()
            lasync.sleep(1)
            parent:cancel("outside")
            error("child failed", 0)
          end)
          lasync.sleep(3600)
        end)
        assert.is_true(lasync.TaskGroupError:is(err))
        assert.are.same({n = 1, "child failed"}, err.errors)
        assert.are.equal(1, parent:cancelling())
        lasync.sleep(3600)  -- raises the pending cancellation
        return "not cancelled"
      end)
      assert.is_true(is_cancelled(catch(parent.await, parent)))
    end))
  end)

  describe("when the body fails", function()
    it("cancels the children and raises TaskGroupError", helper.virtual(function()
      local log, child = {}, nil
      local boom = {}
      local err = catch(lasync.task_group, function(tg)
        child = tg:spawn(stubborn(log, "child"))
        lasync.sleep(0)
        error(boom)
      end)
      assert.is_true(lasync.TaskGroupError:is(err))
      assert.are.same({n = 1, boom}, err.errors)
      assert.are.equal("cleaned", log.child)
      assert.is_true(child:cancelled())
    end))

    it("lists an error(nil) of the body, counted in errors.n", helper.virtual(function()
      local err = catch(lasync.task_group, function(tg)
        tg:spawn(lasync.sleep, 0)
        error(nil)
      end)
      assert.is_true(lasync.TaskGroupError:is(err))
      assert.are.same({n = 1}, err.errors)
    end))

    it("lists the children's errors before the body's", helper.virtual(function()
      local err = catch(lasync.task_group, function(tg)
        tg:spawn(function()
          local ok = pcall(lasync.sleep, 3600)
          assert(not ok)
          error("child cleanup failed", 0)
        end)
        lasync.sleep(0)
        error("body", 0)
      end)
      assert.are.same({n = 2, "child cleanup failed", "body"}, err.errors)
    end))
  end)

  describe("when the enclosing task is cancelled", function()
    it("cancels the children, waits for them and propagates", helper.virtual(function()
      local log, seen = {}, nil
      local parent = lasync.spawn(function()
        local ok, err = pcall(lasync.task_group, function(tg)
          tg:spawn(stubborn(log, "a"))
          tg:spawn(stubborn(log, "b"))
          lasync.sleep(3600)
        end)
        seen = {ok = ok, err = err, a = log.a, b = log.b}
        error(err, 0)
      end)
      lasync.sleep(1)
      parent:cancel("stop")
      catch(parent.await, parent)
      assert.is_true(parent:cancelled())
      assert.is_false(seen.ok)
      assert.is_true(is_cancelled(seen.err))
      assert.are.equal("stop", seen.err.message)
      assert.are.equal("cleaned", seen.a)
      assert.are.equal("cleaned", seen.b)
    end))

    it("propagates while it waits for the children after the body",
      helper.virtual(function()
        local log = {}
        local parent = lasync.spawn(lasync.task_group, function(tg)
          tg:spawn(stubborn(log, "child"))
        end)
        lasync.sleep(1)
        parent:cancel()
        assert.is_true(is_cancelled(catch(parent.await, parent)))
        assert.are.equal("cleaned", log.child)
      end))

    it("raises TaskGroupError instead when a child also failed", helper.virtual(function()
      local parent = lasync.spawn(lasync.task_group, function(tg)
        tg:spawn(function()
          local ok = pcall(lasync.sleep, 3600)
          assert(not ok)
          error("cleanup failed", 0)
        end)
        lasync.sleep(3600)
      end)
      lasync.sleep(1)
      parent:cancel()
      local err = catch(parent.await, parent)
      assert.is_true(lasync.TaskGroupError:is(err))
      assert.are.same({n = 1, "cleanup failed"}, err.errors)
    end))
  end)

  describe("misuse", function()
    it("names bad arguments", helper.virtual(function()
      assert.matches("bad argument #1 to 'task_group' %(function expected, got nil%)",
                     catch(lasync.task_group))
      lasync.task_group(function(tg)
        assert.matches("bad argument #1 to 'spawn' %(function expected, got number%)",
                       catch(tg.spawn, tg, 1))
        assert.matches("calling 'spawn' on bad self %(TaskGroup expected, got function%)",
                       catch(tg.spawn, print))
      end)
    end))

    it("refuses new children once finished", helper.virtual(function()
      local group = lasync.task_group(function(tg) return tg end)
      assert.matches("task group is finished", catch(group.spawn, group, print))
    end))

    it("raises outside a task", function()
      assert.matches("task_group called outside a task", catch(lasync.task_group, print))
    end)
  end)
end)
