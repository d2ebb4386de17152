-- lasync.Lock and lasync.Event (docs/reference.md §7), the `with` and `guard` helpers
-- every lock-like primitive has, self checks, and the fast paths that make
-- no Future. Condition and Barrier: sync_condition_spec.lua; Semaphore and
-- BoundedSemaphore: sync_semaphore_spec.lua.
local lasync = require "lasync"
local helper = require "helper"

local catch = helper.error_of

local settle = helper.settle

local is_cancelled = helper.is_cancelled

-- A task that takes lock, records its name in order, holds the lock for a
-- moment and releases it; its result is pcall's outcome of the acquire.
local function taker(lock, order, name)
  return lasync.spawn(function()
    local ok, err = pcall(lock.acquire, lock)
    if not ok then return false, err end
    order[#order + 1] = name
    lasync.sleep(0)
    lock:release()
    return true
  end)
end

describe("lasync.Lock", function()
  it("is taken and freed by acquire and release", helper.async(function()
    local lock = lasync.Lock()
    assert.is_false(lock:locked())
    assert.is_true(lock:acquire())
    assert.is_true(lock:locked())
    assert.is_nil(lock:release())
    assert.is_false(lock:locked())
  end))

  it("raises when an unlocked Lock is released, at the caller's line", helper.async(function()
    local lock = lasync.Lock()
    local err = catch(function() lock:release() end)
    assert.matches("^spec/sync_spec%.lua:%d+: Lock is not acquired$", err)
    lock:acquire()
    lock:release()
    assert.matches("Lock is not acquired", catch(lock.release, lock))
  end))

  it("serves its waiters in the order they came", helper.async(function()
    local lock, order = lasync.Lock(), {}
    lock:acquire()
    local ts = {}
    for i = 1, 4 do ts[i] = taker(lock, order, i) end
    settle()
    assert.are.equal("<Lock [locked, waiters:4]>", tostring(lock))
    lock:release()
    for i = 1, 4 do assert.is_true((ts[i]:await())) end
    assert.are.same({1, 2, 3, 4}, order)
    assert.is_false(lock:locked())
  end))

  it("does not let a newcomer take a lock a waiter was woken for", helper.async(function()
    local lock, order = lasync.Lock(), {}
    lock:acquire()
    local t = taker(lock, order, "waiter")
    settle()
    lock:release()
    assert.is_false(lock:locked())
    -- The waiter has not run yet: acquire must queue behind it.
    lock:acquire()
    order[#order + 1] = "newcomer"
    assert.are.same({"waiter", "newcomer"}, order)
    assert.is_true((t:await()))
    lock:release()
  end))

  it("forgets a waiter cancelled while waiting", helper.async(function()
    local lock, order = lasync.Lock(), {}
    lock:acquire()
    local a, b = taker(lock, order, "a"), taker(lock, order, "b")
    settle()
    a:cancel()
    settle()
    assert.is_true(a:done())
    local ok, err = a:result()
    assert.is_false(ok)
    assert.is_true(is_cancelled(err))
    assert.are.equal("<Lock [locked, waiters:1]>", tostring(lock))
    lock:release()
    assert.is_true((b:await()))
    assert.are.same({"b"}, order)
    assert.is_false(lock:locked())
  end))

  it("passes a wake-up its cancelled waiter got to the next one", helper.async(function()
    local lock, order = lasync.Lock(), {}
    lock:acquire()
    local a, b = taker(lock, order, "a"), taker(lock, order, "b")
    settle()
    lock:release()   -- wakes a ...
    a:cancel()       -- ... which is cancelled before it runs
    local ok, err = a:await()
    assert.is_false(ok)
    assert.is_true(is_cancelled(err))
    assert.is_true((b:await()))
    assert.are.same({"b"}, order)
    assert.is_false(lock:locked())
    assert.are.equal("<Lock [unlocked]>", tostring(lock))
  end))

  it("keeps the others in order when any waiter leaves", helper.async(function()
    local lock, order, ts = lasync.Lock(), {}, {}
    lock:acquire()
    for i = 1, 8 do ts[i] = taker(lock, order, i) end
    settle()
    for _, i in ipairs {4, 3, 1, 8, 6, 7} do  -- middle, head, tail, ...
      ts[i]:cancel()
      settle()
    end
    assert.are.equal("<Lock [locked, waiters:2]>", tostring(lock))
    lock:release()
    for i = 1, 8 do ts[i]:await() end
    assert.are.same({2, 5}, order)
    assert.are.equal("<Lock [unlocked]>", tostring(lock))
    -- no slot left behind (white box)
    assert.are.same({head = 1, tail = 0}, lock._waiters:list())
    for round = 1, 2 do  -- the list works on after it emptied
      local again = {taker(lock, order, "x" .. round), taker(lock, order, "y" .. round)}
      again[1]:await(); again[2]:await()
    end
    assert.are.same({2, 5, "x1", "y1", "x2", "y2"}, order)
  end))

  it("lets an acquire jump a queue of cancelled waiters only", helper.async(function()
    local lock = lasync.Lock()
    lock:acquire()
    local a = lasync.spawn(lock.acquire, lock)
    settle()
    a:cancel()
    lock:release()
    -- a has not run its cancellation yet, but it no longer counts: the
    -- acquire does not wait (the callback would run if it did).
    local waited = false
    lasync.get_running_loop():call_soon(function() waited = true end)
    assert.is_true(lock:acquire())
    assert.is_false(waited)
    assert.is_true(lock:locked())
    assert.is_true(is_cancelled(catch(a.await, a)))
    lock:release()
    assert.is_false(lock:locked())
  end))

  it("leaves no trace when a timeout or wait_for ends the wait", helper.virtual(function()
    local lock = lasync.Lock()
    lock:acquire()
    local err = catch(lasync.timeout, 5, lock.acquire, lock)
    assert.is_true(lasync.TimeoutError:is(err))
    err = catch(lasync.wait_for, function() return lock:acquire() end, 5)
    assert.is_true(lasync.TimeoutError:is(err))
    assert.are.equal("<Lock [locked]>", tostring(lock))
    lock:release()
    assert.is_false(lock:locked())
    assert.is_true(lasync.timeout(5, lock.acquire, lock))
    lock:release()
  end))

  it("raises in a callback when it would wait, leaving no waiter", helper.async(function()
    local lock, reports = lasync.Lock(), helper.reports()
    local loop = lasync.get_running_loop()
    lock:acquire()
    loop:call_soon(lock.acquire, lock)
    settle()
    assert.are.equal(1, #reports)
    assert.matches("acquire called outside a task", tostring(reports[1].exception))
    assert.are.equal("<Lock [locked]>", tostring(lock))
    lock:release()
    loop:call_soon(lock.acquire, lock)  -- free: taken at once
    settle()
    assert.are.equal(1, #reports)
    assert.is_true(lock:locked())
    lock:release()
  end))

  it("raises outside a task only when it would have to wait", function()
    local lock = lasync.Lock()
    assert.is_true(lock:acquire())
    assert.matches("acquire called outside a task", catch(lock.acquire, lock))
    assert.are.equal("<Lock [locked]>", tostring(lock))
    lock:release()
  end)
end)

describe("lasync.Event", function()
  it("starts unset; set and clear change the flag", helper.async(function()
    local ev = lasync.Event()
    assert.is_false(ev:is_set())
    assert.are.equal("<Event [unset]>", tostring(ev))
    assert.is_nil(ev:set())
    assert.is_true(ev:is_set())
    assert.are.equal("<Event [set]>", tostring(ev))
    ev:set()
    assert.is_true(ev:is_set())
    assert.is_nil(ev:clear())
    assert.is_false(ev:is_set())
  end))

  it("returns true at once from wait() when set", helper.async(function()
    local ev, ran = lasync.Event(), false
    lasync.get_running_loop():call_soon(function() ran = true end)
    ev:set()
    assert.is_true(ev:wait())
    assert.is_false(ran)  -- wait did not suspend
    settle()
    assert.is_true(ran)
  end))

  it("wakes every waiter, in the order they came", helper.async(function()
    local ev, order, ts = lasync.Event(), {}, {}
    for i = 1, 3 do
      ts[i] = lasync.spawn(function() assert(ev:wait() == true); order[#order + 1] = i end)
    end
    settle()
    assert.are.equal("<Event [unset, waiters:3]>", tostring(ev))
    ev:set()
    ev:clear()  -- waiters already woken still return
    for i = 1, 3 do ts[i]:await() end
    assert.are.same({1, 2, 3}, order)
    assert.are.equal("<Event [unset]>", tostring(ev))
  end))

  it("raises from wait() outside a task only when it would wait", helper.async(function()
    local ev, reports = lasync.Event(), helper.reports()
    local loop = lasync.get_running_loop()
    loop:call_soon(ev.wait, ev)
    settle()
    assert.are.equal(1, #reports)
    assert.matches("wait called outside a task", tostring(reports[1].exception))
    assert.are.equal("<Event [unset]>", tostring(ev))
    ev:set()
    loop:call_soon(ev.wait, ev)  -- set: returns at once
    settle()
    assert.are.equal(1, #reports)
  end))

  it("raises from wait() with no loop running", function()
    local ev = lasync.Event()
    assert.matches("wait called outside a task", catch(ev.wait, ev))
    ev:set()
    assert.is_true(ev:wait())
  end)

  it("forgets a waiter cancelled or timed out", helper.async(function()
    local ev = lasync.Event()
    local a = lasync.spawn(ev.wait, ev)
    local b = lasync.spawn(ev.wait, ev)
    settle()
    a:cancel()
    assert.is_true(is_cancelled(catch(a.await, a)))
    assert.is_true(lasync.TimeoutError:is(catch(lasync.timeout, 0.005, ev.wait, ev)))
    assert.are.equal("<Event [unset, waiters:1]>", tostring(ev))
    ev:set()
    assert.is_true(b:await())
  end))

  it("still returns true to a waiter set then cancelled late", helper.async(function()
    local ev = lasync.Event()
    local a = lasync.spawn(function()
      local ok, err = pcall(ev.wait, ev)
      return ok, err
    end)
    settle()
    ev:set()
    a:cancel()  -- after the wake-up: the task sees the cancellation
    local ok, err = a:await()
    assert.is_false(ok)
    assert.is_true(is_cancelled(err))
    assert.is_true(ev:is_set())
  end))
end)

-- The `with` and `guard` helpers of every lock-like primitive.
local LOCKLIKE = {
  Lock = function() return lasync.Lock() end,
  Condition = function() return lasync.Condition() end,
  Semaphore = function() return lasync.Semaphore(1) end,
  BoundedSemaphore = function() return lasync.BoundedSemaphore(1) end,
}

for name, make in pairs(LOCKLIKE) do
  describe(name .. ":with and :guard", function()
    it("with runs fn holding it and returns every result", helper.async(function()
      local l = make()
      local r = table.pack(l:with(function(a, b)
        assert.is_true(l:locked())
        return a, nil, b, nil
      end, 1, 2))
      assert.are.same({n = 4, 1, nil, 2}, r)
      assert.is_false(l:locked())
    end))

    it("with releases on error and raises the error as it was", helper.async(function()
      local l, boom = make(), {}
      assert.are.equal(boom, catch(l.with, l, error, boom))
      assert.is_false(l:locked())
      assert.are.equal("text", catch(l.with, l, error, "text", 0))
      assert.is_false(l:locked())
    end))

    it("with releases when the task is cancelled inside fn", helper.async(function()
      local l = make()
      local t = lasync.spawn(l.with, l, lasync.sleep, 10)
      settle()
      assert.is_true(l:locked())
      t:cancel()
      assert.is_true(is_cancelled(catch(t.await, t)))
      assert.is_false(l:locked())
    end))

    it("with never runs fn when the wait for it is cancelled", helper.async(function()
      local l, ran = make(), false
      l:acquire()
      local t = lasync.spawn(l.with, l, function() ran = true end)
      settle()
      t:cancel()
      assert.is_true(is_cancelled(catch(t.await, t)))
      assert.is_false(ran)
      l:release()
      assert.is_false(l:locked())
    end))

    it("with checks fn", helper.async(function()
      local l = make()
      assert.matches("bad argument #1 to 'with' %(function expected, got nil%)",
                     catch(l.with, l))
      assert.is_false(l:locked())
    end))

    it("guard releases when its <close> variable goes", helper.async(function()
      local l = make()
      do
        local _ <close> = l:guard()
        assert.is_true(l:locked())
      end
      assert.is_false(l:locked())
      local boom = {}
      assert.are.equal(boom, catch(function()
        local _ <close> = l:guard()
        error(boom)
      end))
      assert.is_false(l:locked())
      local g = l:guard()
      l:release()
      assert.are.equal(g, l:guard())  -- one per owner: no allocation
      l:release()
    end))

    it("guard releases when the task is cancelled while it holds", helper.async(function()
      local l = make()
      local t = lasync.spawn(function()
        local _ <close> = l:guard()
        lasync.sleep(10)
      end)
      settle()
      assert.is_true(l:locked())
      t:cancel()
      assert.is_true(is_cancelled(catch(t.await, t)))
      assert.is_false(l:locked())
    end))
  end)
end

describe("sync primitives' self checks", function()
  local cases = {
    {"Lock", lasync.Lock, {"acquire", "release", "locked", "with", "guard"}},
    {"Event", lasync.Event, {"is_set", "set", "clear", "wait"}},
    {"Condition", lasync.Condition,
     {"acquire", "release", "locked", "wait", "wait_for", "notify", "notify_all",
      "with", "guard"}},
    {"Semaphore", lasync.Semaphore, {"acquire", "release", "locked", "with", "guard"}},
    {"BoundedSemaphore", lasync.BoundedSemaphore, {"release", "with", "guard"}},
    {"Barrier", function() return lasync.Barrier(1) end,
     {"wait", "reset", "abort", "n_waiting", "broken"}},
  }
  for _, c in ipairs(cases) do
    it(c[1] .. " methods name the method and what self should be", function()
      local obj, other = c[2](), lasync.Queue()
      for _, m in ipairs(c[3]) do
        local f = obj[m]
        assert.matches(("calling '%s' on bad self %%(%s expected, got nil%%)")
                       :format(m, c[1]), catch(f))
        assert.matches(("got number"), catch(f, 42))
        assert.matches(("got Queue"), catch(f, other))
      end
    end)
  end

  it("a Semaphore method accepts a BoundedSemaphore but not a Lock", function()
    local s = lasync.BoundedSemaphore(1)
    assert.is_true(lasync.Semaphore(1).acquire(s))
    assert.matches("Semaphore expected, got Lock", catch(s.acquire, lasync.Lock()))
  end)
end)

describe("sync fast paths", function()
  local futures_made = helper.futures_made

  it("make no Future when nothing has to wait", helper.async(function()
    local lock, ev, sem = lasync.Lock(), lasync.Event(), lasync.Semaphore(2)
    local bsem, cond = lasync.BoundedSemaphore(1), lasync.Condition()
    assert.are.equal(0, futures_made(function()
      for _ = 1, 3 do
        lock:acquire(); lock:release()
        lock:with(function() end)
        sem:acquire(); sem:acquire(); sem:release(); sem:release()
        bsem:acquire(); bsem:release()
        cond:acquire(); cond:notify(); cond:notify_all(); cond:release()
        ev:set(); ev:wait(); ev:clear()
      end
    end))
  end))

  it("make none when a task has to wait either: it parks", helper.async(function()
    local core = require "lasync.core"
    local lock = lasync.Lock()
    lock:acquire()
    local t = lasync.spawn(lock.acquire, lock)  -- a Task counts as a Future
    assert.are.equal(0, futures_made(function() settle() end))
    assert.are.equal("parked", core._park_state(t))
    lock:release()
    assert.is_true(t:await())
  end))
end)
