-- lasync.Condition and lasync.Barrier (docs/reference.md §7). `with`, `guard` and
-- self checks: sync_spec.lua.
local lasync = require "lasync"
local helper = require "helper"

local catch = helper.error_of

local settle = helper.settle

local is_cancelled = helper.is_cancelled

local function is_broken(err)
  return lasync.BrokenBarrierError:is(err)
end

-- A task that waits on cond (holding its lock) and records name once it
-- returned; its results: pcall's outcome of the wait, and whether the lock
-- was held again when the wait returned or raised.
local function waiter(cond, order, name)
  return lasync.spawn(function()
    cond:acquire()
    local ok, err = pcall(cond.wait, cond)
    local held = cond:locked()
    if ok then order[#order + 1] = name end
    cond:release()
    return ok, err, held
  end)
end

describe("lasync.Condition", function()
  it("makes its own Lock, or uses the one given", helper.async(function()
    local cond = lasync.Condition()
    assert.is_false(cond:locked())
    assert.is_true(cond:acquire())
    assert.is_true(cond:locked())
    assert.are.equal("<Condition [locked]>", tostring(cond))
    cond:release()
    local lock = lasync.Lock()
    local shared = lasync.Condition(lock)
    lock:acquire()
    assert.is_true(shared:locked())
    shared:release()
    assert.is_false(lock:locked())
  end))

  it("wants a Lock", function()
    assert.matches("bad argument #1 to 'Condition' %(Lock or nil expected, got number%)",
                   catch(lasync.Condition, 1))
    assert.matches("got Semaphore", catch(lasync.Condition, lasync.Semaphore()))
  end)

  it("raises from wait, notify and notify_all without the lock", helper.async(function()
    local cond = lasync.Condition()
    local err = catch(function() cond:wait() end)
    assert.matches("^spec/sync_condition_spec%.lua:%d+: cannot wait on un%-acquired lock$", err)
    assert.matches("cannot notify on un%-acquired lock", catch(cond.notify, cond))
    assert.matches("cannot notify on un%-acquired lock", catch(cond.notify_all, cond))
    assert.is_false(cond:locked())
  end))

  it("releases the lock while waiting and holds it again after", helper.async(function()
    local cond, order = lasync.Condition(), {}
    local t = waiter(cond, order, "t")
    settle()
    assert.is_false(cond:locked())
    assert.are.equal("<Condition [unlocked, waiters:1]>", tostring(cond))
    cond:acquire()
    cond:notify()
    settle()
    assert.are.same({}, order)  -- t waits for the lock we hold
    cond:release()
    local ok, err, held = t:await()
    assert.is_true(ok)
    assert.is_true(err)         -- wait() returned true
    assert.is_true(held)
    assert.are.same({"t"}, order)
  end))

  it("notifies n waiters (default 1) in the order they came", helper.async(function()
    local cond, order, ts = lasync.Condition(), {}, {}
    for i = 1, 5 do ts[i] = waiter(cond, order, i) end
    settle()
    cond:acquire()
    cond:notify()
    cond:notify(0)
    cond:notify(2)
    cond:release()
    for i = 1, 3 do ts[i]:await() end
    settle()
    assert.are.same({1, 2, 3}, order)
    cond:acquire()
    cond:notify_all()
    cond:release()
    ts[4]:await(); ts[5]:await()
    assert.are.same({1, 2, 3, 4, 5}, order)
  end))

  it("checks n", helper.async(function()
    local cond = lasync.Condition()
    cond:acquire()
    assert.matches("bad argument #1 to 'notify' %(non%-negative integer expected, got %-1%)",
                   catch(cond.notify, cond, -1))
    assert.matches("got string", catch(cond.notify, cond, "1"))
    cond:release()
  end))

  it("wait_for returns the predicate's first true value", helper.async(function()
    local cond, state, calls = lasync.Condition(), nil, 0
    local t = lasync.spawn(function()
      return cond:with(cond.wait_for, cond, function()
        calls = calls + 1
        return state
      end)
    end)
    settle()
    assert.are.equal(1, calls)
    cond:with(function() cond:notify() end)   -- still nil: waits again
    settle()
    assert.are.equal(2, calls)
    cond:with(function() state = "ready"; cond:notify_all() end)
    assert.are.equal("ready", t:await())
    assert.are.equal(3, calls)
    cond:acquire()
    assert.are.equal(7, cond:wait_for(function() return 7 end))  -- no wait
    assert.matches("bad argument #1 to 'wait_for' %(function expected, got nil%)",
                   catch(cond.wait_for, cond))
    cond:release()
  end))

  it("holds the lock again when a cancellation ends the wait", helper.async(function()
    local cond, order = lasync.Condition(), {}
    local t = waiter(cond, order, "t")
    settle()
    cond:acquire()
    t:cancel()
    settle()
    assert.is_false(t:done())   -- cancelled, but waiting for the lock
    cond:release()
    local ok, err, held = t:await()
    assert.is_false(ok)
    assert.is_true(is_cancelled(err))
    assert.is_true(held)
    assert.is_false(cond:locked())
  end))

  it("takes the lock back through further cancellations", helper.async(function()
    local cond, order = lasync.Condition(), {}
    local t = waiter(cond, order, "t")
    settle()
    cond:acquire()
    t:cancel("first")
    settle()
    t:cancel("second")          -- while it waits for the lock
    settle()
    cond:release()
    local ok, err, held = t:await()
    assert.is_false(ok)
    assert.is_true(is_cancelled(err))
    assert.are.equal("second", err.message)
    assert.is_true(held)
    assert.are.equal(2, t:cancelling())
  end))

  it("notifies another waiter when the notified one is cancelled", helper.async(function()
    local cond, order = lasync.Condition(), {}
    local a, b = waiter(cond, order, "a"), waiter(cond, order, "b")
    settle()
    cond:acquire()
    cond:notify()   -- a ...
    a:cancel()      -- ... is cancelled before it runs
    cond:release()
    local ok, err = a:await()
    assert.is_false(ok)
    assert.is_true(is_cancelled(err))
    assert.is_true((b:await()))
    assert.are.same({"b"}, order)
  end))

  it("leaves no waiter behind on a timeout", helper.async(function()
    local cond = lasync.Condition()
    cond:acquire()
    local err = catch(lasync.timeout, 0.003, cond.wait, cond)
    assert.is_true(lasync.TimeoutError:is(err))
    assert.is_true(cond:locked())
    assert.are.equal("<Condition [locked]>", tostring(cond))
    cond:release()
  end))
end)

-- n tasks waiting at barrier; their results: pcall's outcome of wait.
local function parties(barrier, n)
  local ts = {}
  for i = 1, n do ts[i] = lasync.spawn(pcall, barrier.wait, barrier) end
  return ts
end

describe("lasync.Barrier", function()
  it("wants a positive integer", function()
    for _, bad in ipairs {0, -1, 1.5} do
      assert.matches("bad argument #1 to 'Barrier' %(positive integer expected, got ",
                     catch(lasync.Barrier, bad))
    end
    assert.matches("got nil", catch(lasync.Barrier))
  end)

  it("lets parties tasks through together, with indexes 0 to n - 1", helper.async(function()
    local b = lasync.Barrier(3)
    assert.are.equal(3, b.parties)
    local ts = parties(b, 2)
    settle()
    assert.are.equal(2, b:n_waiting())
    assert.are.equal("<Barrier [filling, waiters:2/3]>", tostring(b))
    assert.is_false(ts[1]:done())
    local mine = b:wait()
    local got = {mine}
    for i = 1, 2 do
      local ok, index = ts[i]:await()
      assert.is_true(ok)
      got[#got + 1] = index
    end
    table.sort(got)
    assert.are.same({0, 1, 2}, got)
    assert.are.equal(2, mine)   -- the last to arrive
    assert.are.equal(0, b:n_waiting())
    assert.is_false(b:broken())
  end))

  it("is used again for the next round", helper.async(function()
    local b = lasync.Barrier(2)
    for _ = 1, 3 do
      local t = lasync.spawn(b.wait, b)
      settle()
      assert.are.equal(1, b:wait())
      assert.are.equal(0, t:await())
    end
    assert.are.equal(0, lasync.Barrier(1):wait())
  end))

  it("makes tasks of the next round wait until the last one drained", helper.async(function()
    local b = lasync.Barrier(2)
    local first = parties(b, 2)
    local second = parties(b, 1)  -- arrives while the first round is filling
    for i = 1, 2 do assert.is_true((first[i]:await())) end
    settle()
    assert.are.equal(1, b:n_waiting())
    assert.are.equal(1, b:wait())
    local ok, index = second[1]:await()
    assert.is_true(ok)
    assert.are.equal(0, index)
  end))

  it("breaks waiters and later wait()s on abort, until reset", helper.async(function()
    local b = lasync.Barrier(3)
    local ts = parties(b, 2)
    settle()
    assert.is_nil(b:abort())
    for i = 1, 2 do
      local ok, err = ts[i]:await()
      assert.is_false(ok)
      assert.is_true(is_broken(err))
    end
    assert.is_true(b:broken())
    assert.are.equal(0, b:n_waiting())
    assert.are.equal("<Barrier [broken]>", tostring(b))
    assert.is_true(is_broken(catch(b.wait, b)))
    assert.is_nil(b:reset())
    assert.is_false(b:broken())
    ts = parties(b, 2)
    b:wait()
    for i = 1, 2 do assert.is_true((ts[i]:await())) end
  end))

  it("breaks the tasks waiting on reset, then fills again", helper.async(function()
    local b = lasync.Barrier(2)
    local ts = parties(b, 1)
    settle()
    b:reset()
    local ok, err = ts[1]:await()
    assert.is_false(ok)
    assert.is_true(is_broken(err))
    assert.are.equal("<Barrier [filling, waiters:0/2]>", tostring(b))
    assert.is_false(b:broken())
    ts = parties(b, 1)
    settle()
    assert.are.equal(1, b:wait())
    assert.is_true((ts[1]:await()))
  end))

  it("forgets a waiter cancelled or timed out", helper.async(function()
    local b = lasync.Barrier(2)
    local t = lasync.spawn(b.wait, b)
    settle()
    assert.are.equal(1, b:n_waiting())
    t:cancel()
    assert.is_true(is_cancelled(catch(t.await, t)))
    assert.are.equal(0, b:n_waiting())
    assert.is_true(lasync.TimeoutError:is(catch(lasync.timeout, 0.003, b.wait, b)))
    assert.are.equal(0, b:n_waiting())
    t = lasync.spawn(b.wait, b)
    settle()
    assert.are.equal(1, b:wait())
    assert.are.equal(0, t:await())
  end))
end)
