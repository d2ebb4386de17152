-- docs/reference.md §4, cancellation: asyncio's semantics exactly.
local lasync = require "lasync"
local helper = require "helper"
local util = require "core.util"

local CancelledError = lasync.CancelledError

local function closer(log, v)
  return setmetatable({}, {__close = function() log[#log + 1] = v end})
end

describe("Task:cancel", function()
  it("raises CancelledError with the message at the suspension point", helper.async(function()
    local caught
    local t = lasync.spawn(function()
      local ok, e = pcall(lasync.sleep, 10)
      caught = e
      assert(not ok)
      error(e, 0)
    end)
    lasync.sleep(0)
    assert.is_true(t:cancel("enough"))
    local e = util.error_of(t.await, t)
    assert.is_true(CancelledError:is(caught))
    assert.are.equal("enough", caught.message)
    assert.is_true(CancelledError:is(e))
    assert.are.equal("enough", e.message)
    assert.is_true(t:cancelled())
    assert.is_true(t:done())
    assert.is_true(CancelledError:is(util.error_of(t.result, t)))
    assert.is_true(CancelledError:is(util.error_of(t.exception, t)))
  end))

  it("without a message gives a CancelledError without one", helper.async(function()
    local t = lasync.spawn(function() lasync.sleep(10) end)
    lasync.sleep(0)
    t:cancel()
    local e = util.error_of(t.await, t)
    assert.is_true(CancelledError:is(e))
    assert.is_nil(e.message)
  end))

  it("cancels the future the task waits on, at once", helper.async(function()
    local f = lasync.Future()
    local t = lasync.spawn(function() return f:await() end)
    lasync.sleep(0)
    t:cancel("m")
    assert.is_true(f:cancelled())
    assert.are.equal("m", util.error_of(f.result, f).message)
    assert.are.equal("m", util.error_of(t.await, t).message)
  end))

  it("cancels the task a task waits on, and so on down", helper.async(function()
    local f = lasync.Future()
    local inner = lasync.spawn(function() return f:await() end)
    local outer = lasync.spawn(function() return inner:await() end)
    lasync.sleep(0)
    outer:cancel("chain")
    assert.is_true(f:cancelled())
    assert.are.equal("chain", util.error_of(outer.await, outer).message)
    assert.is_true(inner:cancelled())
    assert.is_true(outer:cancelled())
    assert.are.equal(1, inner:cancelling())
  end))

  it("goes down a long chain of tasks awaiting each other", helper.async(function()
    local f = lasync.Future()
    local chain = {lasync.spawn(function() return f:await() end)}
    for i = 2, 10000 do
      local prev = chain[i - 1]
      chain[i] = lasync.spawn(function() return prev:await() end)
    end
    lasync.sleep(0)
    assert.is_true(chain[#chain]:cancel("long"))
    assert.is_true(f:cancelled())
    assert.are.equal("long", util.error_of(chain[#chain].await, chain[#chain]).message)
    for _, t in ipairs(chain) do assert.is_true(t:cancelled()) end
  end))

  it("of tasks awaiting each other in a cycle cancels them all", helper.async(function()
    local a, b, c
    a = lasync.spawn(function() lasync.sleep(0) return b:await() end)
    b = lasync.spawn(function() lasync.sleep(0) return c:await() end)
    c = lasync.spawn(function() lasync.sleep(0) return a:await() end)
    lasync.sleep(0.002)
    assert.is_true(a:cancel("cycle"))
    for _, t in ipairs {a, b, c} do
      local e = util.error_of(t.await, t)
      assert.is_true(CancelledError:is(e))
      assert.are.equal("cycle", e.message)
      assert.is_true(t:cancelled())
      assert.are.equal(1, t:cancelling())
    end
  end))

  it("of a task that catches it and returns leaves the task not cancelled", helper.async(function()
    local t = lasync.spawn(function()
      local ok, e = pcall(lasync.sleep, 10)
      assert(not ok and CancelledError:is(e))
      lasync.sleep(0.001)  -- awaiting again works
      return "recovered", e.message
    end)
    lasync.sleep(0)
    t:cancel("x")
    assert.are.same({"recovered", "x"}, {t:await()})
    assert.is_false(t:cancelled())
    assert.are.equal(1, t:cancelling())
  end))

  it("returns false on a done task and does not count then", helper.async(function()
    local t = lasync.spawn(function() return 1 end)
    t:await()
    assert.is_false(t:cancel())
    assert.are.equal(0, t:cancelling())
    assert.is_false(t:cancelled())
    local f = lasync.spawn(function() error("x") end)
    pcall(f.await, f)
    assert.is_false(f:cancel())
  end))

  it("counts every call in cancelling(); uncancel() takes one back", helper.async(function()
    local t = lasync.spawn(function()
      pcall(lasync.sleep, 10)
      lasync.sleep(0.001)
      return "ok"
    end)
    lasync.sleep(0)
    assert.are.equal(0, t:cancelling())
    assert.is_true(t:cancel())
    assert.is_true(t:cancel())
    assert.is_true(t:cancel())
    assert.are.equal(3, t:cancelling())
    assert.are.equal(2, t:uncancel())
    assert.are.equal(2, t:cancelling())
    assert.are.equal("ok", t:await())
    assert.are.equal(1, t:uncancel())
    assert.are.equal(0, t:uncancel())
    assert.are.equal(0, t:uncancel())
  end))

  it("before the first step means the function never runs", helper.async(function()
    local ran = false
    local t = lasync.spawn(function() ran = true end)
    assert.is_true(t:cancel("early"))
    assert.are.equal("early", util.error_of(t.await, t).message)
    assert.is_false(ran)
    assert.is_true(t:cancelled())
  end))

  it("of a task queued after sleep(0) raises at that sleep", helper.async(function()
    local log = {}
    local t = lasync.spawn(function()
      local ok, e = pcall(lasync.sleep, 0)
      log[#log + 1] = ok
      log[#log + 1] = e and e.message
    end)
    lasync.sleep(0)  -- t ran up to its sleep(0) and is queued again
    t:cancel("queued")
    t:await()
    assert.are.same({false, "queued"}, log)
  end))

  it("of the running task itself raises at its next suspension", helper.async(function()
    local t = lasync.spawn(function()
      lasync.current_task():cancel("self")
      local ok, e = pcall(lasync.sleep, 0)
      return ok, e.message
    end)
    assert.are.same({false, "self"}, {t:await()})
  end))

  it("of the running task cancels the future it then awaits", helper.async(function()
    local f = lasync.Future()
    local t = lasync.spawn(function()
      lasync.current_task():cancel("self")
      return f:await()
    end)
    assert.are.equal("self", util.error_of(t.await, t).message)
    assert.is_true(f:cancelled())
  end))

  it("of a task that returns before suspending ends it cancelled", helper.async(function()
    local t = lasync.spawn(function()
      lasync.current_task():cancel("late")
      return "value"
    end)
    assert.are.equal("late", util.error_of(t.await, t).message)
    assert.is_true(t:cancelled())
  end))

  it("is forgotten when uncancel() brings the count back to 0", helper.async(function()
    local t = lasync.spawn(function()
      local me = lasync.current_task()
      me:cancel()
      me:uncancel()
      lasync.sleep(0)
      return "not cancelled"
    end)
    assert.are.equal("not cancelled", t:await())
  end))

  it("is not re-raised after the task caught it", helper.async(function()
    local t = lasync.spawn(function()
      pcall(lasync.sleep, 10)
      lasync.sleep(0)
      lasync.sleep(0.001)
      return "done"
    end)
    lasync.sleep(0)
    t:cancel()
    assert.are.equal("done", t:await())
  end))

  it("of a cancelled task runs its done callbacks", helper.async(function()
    local seen
    local t = lasync.spawn(function() lasync.sleep(10) end)
    t:add_done_callback(function(x) seen = x:cancelled() end)
    lasync.sleep(0)
    t:cancel()
    pcall(t.await, t)
    lasync.sleep(0)
    assert.is_true(seen)
  end))

  it("checks self", helper.async(function()
    local f = lasync.Future()
    util.raises({"task expected"}, lasync.current_task().cancelling, f)
    util.raises({"task expected"}, lasync.current_task().uncancel, f)
    f:cancel()
  end))
end)

describe("a task raising CancelledError itself", function()
  it("ends cancelled with that message", helper.async(function()
    local t = lasync.spawn(function() error(CancelledError("own")) end)
    assert.are.equal("own", util.error_of(t.await, t).message)
    assert.is_true(t:cancelled())
  end))

  it("ends cancelled when a future it awaits was cancelled by someone else", helper.async(function()
    local f = lasync.Future()
    local t = lasync.spawn(function() return f:await() end)
    lasync.sleep(0)
    f:cancel("from outside")
    assert.are.equal("from outside", util.error_of(t.await, t).message)
    assert.is_true(t:cancelled())
    assert.are.equal(0, t:cancelling())
  end))
end)

describe("the coroutine of a finished task", function()
  it("is closed when the task is cancelled: its <close> variables run", helper.async(function()
    local log = {}
    local t = lasync.spawn(function()
      local _ <close> = closer(log, "outer")
      local function inner()
        local _ <close> = closer(log, "inner")
        lasync.sleep(10)
      end
      inner()
    end)
    lasync.sleep(0)
    t:cancel()
    pcall(t.await, t)
    assert.are.same({"inner", "outer"}, log)
    assert.are.equal("dead", coroutine.status(t:get_coro()))
  end))

  it("is closed when the task fails: its <close> variables run", helper.async(function()
    local log = {}
    local t = lasync.spawn(function()
      local _ <close> = closer(log, "closed")
      lasync.sleep(0)
      error("failed")
    end)
    assert.is_truthy(util.error_of(t.await, t):find("failed", 1, true))
    assert.are.same({"closed"}, log)
    assert.are.equal("dead", coroutine.status(t:get_coro()))
  end))

  it("is closed when the task is cancelled before it starts", helper.async(function()
    local t = lasync.spawn(function() end)
    t:cancel()
    pcall(t.await, t)
    assert.is_true(t:cancelled())
  end))
end)

describe("cancelling a sleep", function()
  it("lets go of its timer and of the values it would return", helper.async(function()
    local weak, tasks = setmetatable({}, {__mode = "k"}), {}
    for i = 1, 200 do
      local v = {}
      weak[v] = true
      tasks[i] = lasync.spawn(lasync.sleep, 100, v)
    end
    lasync.sleep(0)
    for _, t in ipairs(tasks) do t:cancel() end
    for _, t in ipairs(tasks) do pcall(t.await, t) end
    collectgarbage()
    collectgarbage()
    local alive = 0
    for _ in pairs(weak) do alive = alive + 1 end
    assert.is_true(alive <= 65, alive .. " sleep values still held")
  end))
end)
