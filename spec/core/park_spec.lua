-- core._park / core._unpark: a task waits with no Future (what lasync.sync
-- and lasync.queues build on). Cancellation behaves as if the task awaited
-- a Future of its own that unpark resolves.
local lasync = require "lasync"
local core = require "lasync.core"
local helper = require "helper"

local CancelledError = lasync.CancelledError
local park, unpark, park_state = core._park, core._unpark, core._park_state
local settle = helper.settle

-- A task that parks once and returns what park returned, in a table.
local function parker()
  return lasync.spawn(function()
    return {park(core.current_task())}
  end)
end

describe("core._park", function()
  it("waits until unpark, which hands it a value", helper.async(function()
    local t = parker()
    settle()
    assert.are.equal("parked", park_state(t))
    assert.is_false(t:done())
    assert.is_true(unpark(t, "v"))
    assert.are.equal("woken", park_state(t))
    assert.is_false(unpark(t, "w"))  -- once only
    assert.are.same({true, "v"}, t:await())
    assert.is_nil(park_state(t))
  end))

  it("wakes with no value as with nil", helper.async(function()
    local t = parker()
    settle()
    unpark(t)
    assert.are.same({true}, t:await())
  end))

  it("makes no Future", helper.async(function()
    local t = parker()  -- a Task, counted as a Future: made before counting
    assert.are.equal(0, helper.futures_made(function()
      settle()
      unpark(t)
      t:await()
    end))
  end))

  it("unpark of a task that is not parked does nothing", helper.async(function()
    local f = lasync.Future()
    local t = lasync.spawn(f.await, f)
    settle()
    assert.is_false(unpark(t))
    assert.is_nil(park_state(t))
    t:cancel()
    settle()
    assert.is_false(unpark(t))
  end))

  it("is how sleep(d > 0) waits: no Future, the timer unparks", helper.async(function()
    local t = lasync.spawn(lasync.sleep, 0.001, "a", "b")
    assert.are.equal(0, helper.futures_made(function()
      settle()
    end))
    assert.are.equal("parked", park_state(t))
    assert.are.same({"a", "b"}, {t:await()})
  end))

  it("woken early, a sleep drops its timer", helper.async(function()
    local t = lasync.spawn(lasync.sleep, 10, "v")
    settle()
    assert.is_true(unpark(t))
    assert.are.equal("v", t:await())
    t = lasync.spawn(lasync.sleep, 10)
    settle()
    t:cancel()
    assert.is_true(CancelledError:is(helper.error_of(t.await, t)))
    -- no timer is left: helper.run fails a spec that leaves a live one
  end))

  it("keeps the parked task pending and listed", helper.async(function()
    local t = parker()
    settle()
    collectgarbage()
    local found = false
    for _, x in ipairs(lasync.all_tasks()) do found = found or x == t end
    assert.is_true(found)
    unpark(t, 1)
    assert.are.same({true, 1}, t:await())
  end))

  it("returns false and a CancelledError when cancelled", helper.async(function()
    local t = parker()
    settle()
    assert.is_true(t:cancel("stop"))
    assert.are.equal("cancelled", park_state(t))
    assert.is_false(unpark(t))  -- a cancelled waiter takes no wake-up
    local r = t:await()
    assert.is_false(r[1])
    assert.is_true(CancelledError:is(r[2]))
    assert.are.equal("stop", r[2].message)
    assert.is_false(r[3])
    assert.are.equal(1, t:cancelling())
  end))

  it("tells a waiter woken then cancelled before it ran", helper.async(function()
    local t = parker()
    settle()
    unpark(t, "v")
    t:cancel("late")
    local r = t:await()
    assert.is_false(r[1])
    assert.are.equal("late", r[2].message)
    assert.is_true(r[3])
  end))

  it("raises the cancellation if the task re-raises it", helper.async(function()
    local t = lasync.spawn(function()
      local ok, err = park(core.current_task())
      if not ok then error(err, 0) end
    end)
    settle()
    t:cancel()
    assert.is_true(CancelledError:is(helper.error_of(t.await, t)))
    assert.is_true(t:cancelled())
  end))

  it("throws a cancellation asked for before it parked", helper.async(function()
    local t = lasync.spawn(function()
      local me = core.current_task()
      me:cancel("self")
      return {park(me)}
    end)
    local r = t:await()
    assert.is_false(r[1])
    assert.are.equal("self", r[2].message)
    assert.is_false(r[3])
  end))

  it("is cancelled at the end of a chain of awaiting tasks", helper.async(function()
    local inner = parker()
    local outer = lasync.spawn(function() return inner:await() end)
    settle()
    outer:cancel("chain")
    local r = inner:await()
    assert.is_false(r[1])
    assert.are.equal("chain", r[2].message)
    outer:cancel()
    settle()
    assert.is_true(outer:done())
  end))

  it("passes through lasync.coroutine", helper.async(function()
    local co = require "lasync.coroutine"
    local t = lasync.spawn(function()
      local me = core.current_task()
      local gen = co.wrap(function() co.yield(park(me)) end)
      return {gen()}
    end)
    settle()
    assert.are.equal("parked", park_state(t))
    unpark(t, 7)
    assert.are.same({true, 7}, t:await())
  end))

  it("caught by a foreign coroutine, leaves no trace", helper.async(function()
    local t = lasync.spawn(function()
      local me = core.current_task()
      local co = coroutine.create(function() return park(me) end)
      coroutine.resume(co)  -- the park's yield stops here
      lasync.sleep(0)
      return "ran on"
    end)
    assert.are.equal("ran on", t:await())
    assert.is_false(unpark(t))
  end))

  it("checks its argument and where it is called", helper.async(function()
    local other = parker()
    settle()
    local x = lasync.spawn(function() park(other) end)
    assert.matches("bad argument #1 to 'park' %(the running task expected%)",
                   tostring(helper.error_of(x.await, x)))
    x = lasync.spawn(function() park(nil) end)
    assert.matches("the running task expected", tostring(helper.error_of(x.await, x)))
    unpark(other)
    other:await()
    assert.matches("bad argument #1", tostring(helper.error_of(unpark, {})))
  end))
end)

describe("core._WaitList", function()
  local function list() return core._WaitList() end
  local WaitList = getmetatable(list()).__index  -- the methods
  local function dump(w) return w:list() end

  local function parked_in(w, log, taken)
    return lasync.spawn(function()
      local r = {w:park("wait", taken)}
      log[#log + 1] = core.current_task()
      return r
    end)
  end

  it("lists the tasks in order; each leaves when it ran", helper.async(function()
    local w, log = list(), {}
    local a, b, c = parked_in(w, log), parked_in(w, log), parked_in(w, log)
    settle()
    assert.are.same({head = 1, tail = 3, a, b, c}, dump(w))
    assert.are.equal(2, w:unpark(2))
    assert.are.equal(1, w:unpark(5))  -- a and b were woken already
    assert.are.equal(0, w:unpark())
    settle()
    assert.are.same({a, b, c}, log)
    assert.are.same({head = 1, tail = 0}, dump(w))
    assert.are.same({true}, a:await())
  end))

  it("leaves tombstones in the middle, none at the ends", helper.async(function()
    local w, log = list(), {}
    local a, b, c, d = parked_in(w, log), parked_in(w, log), parked_in(w, log), parked_in(w, log)
    settle()
    b:cancel()
    settle()
    assert.are.same({head = 1, tail = 4, a, false, c, d}, dump(w))
    d:cancel()
    settle()
    assert.are.same({head = 1, tail = 3, a, false, c}, dump(w))
    a:cancel()
    settle()
    assert.are.same({head = 3, tail = 3, [3] = c}, dump(w))
    local r = b:await()
    assert.is_false(r[1])
    assert.is_true(CancelledError:is(r[2]))
    w:unpark()
    settle()
    assert.are.same({head = 1, tail = 0}, dump(w))
  end))

  it("taken: wakers take waiters off, skipping cancelled ones", helper.async(function()
    local w, log = list(), {}
    local a, b, c = parked_in(w, log, true), parked_in(w, log, true), parked_in(w, log, true)
    settle()
    a:cancel()
    assert.are.equal(b, w:unpark_next())
    assert.are.same({head = 3, tail = 3, [3] = c}, dump(w))
    c:cancel()
    settle()
    assert.are.same({head = 1, tail = 0}, dump(w))
    assert.is_nil(w:unpark_next())
    assert.are.same({true}, b:await())
  end))

  it("taken: woken then cancelled, it says so and is off the list", helper.async(function()
    local w, log = list(), {}
    local a = parked_in(w, log, true)
    settle()
    assert.are.equal(a, w:unpark_next())
    a:cancel()
    local r = a:await()
    assert.are.same({false, r[2], true}, r)
    assert.are.same({head = 1, tail = 0}, dump(w))
  end))

  it("a list that never empties stays at small indices", helper.async(function()
    local w, log = list(), {}
    local first = parked_in(w, log)
    local prev = first
    for _ = 1, 50 do  -- always one waiting while the next comes
      local t = parked_in(w, log)
      settle()
      w:unpark()
      settle()
      assert.is_true(prev:done())
      prev = t
    end
    local n = 0
    for _ in pairs(debug.getuservalue(w, 1)) do n = n + 1 end
    assert.are.equal(1, n)  -- one task left, no slot behind
    assert.are.same({head = 2, tail = 2, [2] = prev}, dump(w))
    assert.are.equal(50, #log)
    w:unpark()
    prev:await()
  end))

  it("packs the list under waiters, which still leave in order", helper.async(function()
    local w, log = list(), {}
    local a, b, c = parked_in(w, log), parked_in(w, log), parked_in(w, log)
    settle()
    a:cancel()
    settle()
    assert.are.same({head = 2, tail = 3, [2] = b, [3] = c}, dump(w))
    local d = parked_in(w, log)
    settle()
    assert.are.same({head = 1, tail = 3, b, c, d}, dump(w))
    c:cancel()
    settle()
    assert.are.same({head = 1, tail = 3, b, false, d}, dump(w))
    assert.are.equal(2, w:unpark(5))
    settle()
    assert.are.same({head = 1, tail = 0}, dump(w))
    assert.are.same({a, c, b, d}, log)
  end))

  it("first, count, unpark_first", helper.async(function()
    local w, log = list(), {}
    assert.is_nil(w:first())
    assert.is_nil(w:unpark_first())
    assert.are.equal(0, #w)
    local a, b, c = parked_in(w, log), parked_in(w, log), parked_in(w, log)
    settle()
    assert.are.equal(3, #w)
    assert.are.equal("<WaitList n=3>", tostring(w))
    assert.are.equal(a, w:first())
    a:cancel()
    assert.are.equal(3, w:count())
    assert.are.equal(2, w:count(true))
    assert.is_nil(w:unpark_first())  -- the head was cancelled: nothing
    settle()
    assert.are.equal(b, w:first())
    assert.are.equal(b, w:unpark_first())
    assert.is_nil(w:unpark_first())  -- woken already
    assert.are.equal(2, w:count(true))
    assert.are.equal(1, w:unpark())
    settle()
    assert.are.same({a, b, c}, log)
    assert.are.equal(0, w:count(true))
    assert.matches("WaitList expected", tostring(helper.error_of(WaitList.count, {})))
  end))

  it("makes no Future", helper.async(function()
    local w = list()
    local t = parked_in(w, {})
    assert.are.equal(0, helper.futures_made(function()
      settle()
      w:unpark()
      t:await()
    end))
  end))

  it("names the caller outside a task, listing nothing", helper.async(function()
    local reports, w = helper.reports(), list()
    lasync.get_running_loop():call_soon(WaitList.park, w, "frob")
    settle()
    assert.matches("frob called outside a task", tostring(reports[1].exception))
    assert.are.same({head = 1, tail = 0}, dump(w))
  end))

  it("raises with no running loop", function()
    assert.matches("park called outside a task", tostring(helper.error_of(WaitList.park, list())))
    assert.matches("bad argument #1", tostring(helper.error_of(WaitList.park, nil)))
  end)
end)
