-- lasync.Semaphore and lasync.BoundedSemaphore (docs/reference.md §7). `with`,
-- `guard` and self checks: sync_spec.lua.
local lasync = require "lasync"
local helper = require "helper"

local catch = helper.error_of

local settle = helper.settle

local is_cancelled = helper.is_cancelled

-- The units free: acquire as many as possible without waiting, then give
-- them back.
local function units(sem)
  local n = 0
  while not sem:locked() do
    sem:acquire()
    n = n + 1
  end
  for _ = 1, n do sem:release() end
  return n
end

-- A task that acquires sem, records name, and keeps the unit.
local function holder(sem, order, name)
  return lasync.spawn(function()
    sem:acquire()
    order[#order + 1] = name
  end)
end

for _, kind in ipairs {"Semaphore", "BoundedSemaphore"} do
  local Sem = lasync[kind]

  describe("lasync." .. kind, function()
    it("holds 1 unit by default, n when given", helper.async(function()
      assert.are.equal(1, units(Sem()))
      assert.are.equal(3, units(Sem(3)))
      assert.are.equal(2, units(Sem(2.0)))
      local zero = Sem(0)
      assert.is_true(zero:locked())
      assert.are.equal(("<%s [locked]>"):format(kind), tostring(zero))
      assert.are.equal(("<%s [unlocked, value:3]>"):format(kind), tostring(Sem(3)))
    end))

    it("rejects a count that is not a non-negative integer", function()
      for _, bad in ipairs {-1, 1.5, math.huge, 0 / 0} do
        assert.matches(("bad argument #1 to '%s' %%(non%%-negative integer expected, got ")
                       :format(kind), catch(Sem, bad))
      end
      assert.matches("got string", catch(Sem, "2"))
      assert.matches("got table", catch(Sem, {}))
    end)

    it("counts units down and up; acquire returns true", helper.async(function()
      local sem = Sem(2)
      assert.is_true(sem:acquire())
      assert.is_false(sem:locked())
      assert.is_true(sem:acquire())
      assert.is_true(sem:locked())
      assert.is_nil(sem:release())
      assert.is_false(sem:locked())
      sem:release()
      assert.are.equal(2, units(sem))
    end))

    it("serves waiters in order, one unit each", helper.async(function()
      local sem, order, ts = Sem(1), {}, {}
      sem:acquire()
      for i = 1, 3 do ts[i] = holder(sem, order, i) end
      settle()
      assert.are.equal(("<%s [locked, waiters:3]>"):format(kind), tostring(sem))
      for i = 1, 3 do
        sem:release()
        ts[i]:await()
        assert.are.same({table.unpack({1, 2, 3}, 1, i)}, order)
        assert.is_true(sem:locked())
      end
    end))

    it("makes a newcomer wait behind woken waiters (FIFO)", helper.async(function()
      local sem, order = Sem(1), {}
      sem:acquire()
      local a = holder(sem, order, "a")
      settle()
      sem:release()              -- the unit goes to a, which has not run yet
      assert.is_true(sem:locked())
      local b = holder(sem, order, "b")
      a:await()
      assert.are.same({"a"}, order)
      assert.is_false(b:done())
      sem:release()
      b:await()
      assert.are.same({"a", "b"}, order)
    end))

    it("makes acquire wait while a woken waiter has not run", helper.async(function()
      local sem, order = Sem(1), {}
      sem:acquire()
      local a = holder(sem, order, "a")
      settle()
      sem:release()                 -- handed to a ...
      if kind == "Semaphore" then
        sem:release()               -- ... and one more free unit
        assert.is_true(sem:locked())
        local waited = false
        lasync.get_running_loop():call_soon(function() waited = true end)
        sem:acquire()               -- after a, which came first
        assert.is_true(waited)
        assert.are.same({"a"}, order)
        sem:release(); sem:release()
        assert.are.equal(2, units(sem))
      else
        a:await()
        sem:release()
        assert.are.equal(1, units(sem))
      end
    end))

    it("loses no unit to a waiter cancelled while waiting", helper.async(function()
      local sem, order = Sem(1), {}
      sem:acquire()
      local a, b = holder(sem, order, "a"), holder(sem, order, "b")
      settle()
      a:cancel()
      assert.is_true(is_cancelled(catch(a.await, a)))
      assert.are.equal(("<%s [locked, waiters:1]>"):format(kind), tostring(sem))
      sem:release()
      b:await()
      assert.are.same({"b"}, order)
      sem:release()
      assert.are.equal(1, units(sem))
    end))

    it("passes a unit its cancelled waiter was handed to the next", helper.async(function()
      local sem, order = Sem(2), {}
      sem:acquire(); sem:acquire()
      local ts = {}
      for i = 1, 4 do ts[i] = holder(sem, order, i) end
      settle()
      sem:release(); sem:release()   -- units handed to 1 and 2 ...
      ts[1]:cancel()                 -- ... 1 is cancelled before it runs
      assert.is_true(is_cancelled(catch(ts[1].await, ts[1])))
      ts[2]:await(); ts[3]:await()
      assert.are.same({2, 3}, order)
      assert.is_false(ts[4]:done())
      sem:release()                  -- for 2: 4 gets it
      ts[4]:await()
      assert.are.same({2, 3, 4}, order)
      sem:release(); sem:release()   -- for 3 and 4
      assert.are.equal(2, units(sem))
    end))

    it("wakes as many waiters as units came back", helper.async(function()
      local sem, order = Sem(3), {}
      for _ = 1, 3 do sem:acquire() end
      local ts = {}
      for i = 1, 3 do ts[i] = holder(sem, order, i) end
      settle()
      for _ = 1, 3 do sem:release() end
      for i = 1, 3 do ts[i]:await() end
      assert.are.same({1, 2, 3}, order)
      assert.is_true(sem:locked())
    end))

    it("loses no unit to timeouts", helper.async(function()
      local sem = Sem(1)
      sem:acquire()
      assert.is_true(lasync.TimeoutError:is(catch(lasync.timeout, 0.003, sem.acquire, sem)))
      assert.is_true(lasync.TimeoutError:is(catch(lasync.wait_for,
        function() return sem:acquire() end, 0.003)))
      assert.are.equal(("<%s [locked]>"):format(kind), tostring(sem))
      sem:release()
      assert.are.equal(1, units(sem))
    end))

    it("keeps its count under many cancelled and timed out waiters", helper.virtual(function()
      local sem, got, ts = Sem(2), {}, {}
      sem:acquire(); sem:acquire()
      for i = 1, 12 do
        ts[i] = lasync.spawn(function()
          if i % 3 == 0 then lasync.timeout(2, sem.acquire, sem)
          else sem:acquire() end
          got[#got + 1] = i
          lasync.sleep(0)
          sem:release()
        end)
      end
      settle()
      ts[1]:cancel(); ts[5]:cancel()   -- while waiting
      lasync.sleep(10)                 -- 3, 6, 9, 12 time out
      assert.are.equal(("<%s [locked, waiters:6]>"):format(kind), tostring(sem))
      sem:release(); sem:release()     -- units handed to 2 and 4 ...
      ts[2]:cancel()                   -- ... 2 is cancelled before it runs
      for i = 1, 12 do pcall(ts[i].await, ts[i]) end
      table.sort(got)
      assert.are.same({4, 7, 8, 10, 11}, got)
      assert.are.equal(2, units(sem))
      assert.are.equal(("<%s [unlocked, value:2]>"):format(kind), tostring(sem))
    end))
  end)
end

describe("Semaphore:release", function()
  it("may raise the count above its start", helper.async(function()
    local sem = lasync.Semaphore(1)
    sem:release()
    assert.are.equal(2, units(sem))
  end))
end)

describe("BoundedSemaphore:release", function()
  it("raises when every unit is back, at the caller's line", helper.async(function()
    local sem = lasync.BoundedSemaphore(2)
    local err = catch(function() sem:release() end)
    assert.matches("^spec/sync_semaphore_spec%.lua:%d+: BoundedSemaphore released too many times$",
                   err)
    sem:acquire()
    sem:release()
    assert.matches("released too many times", catch(sem.release, sem))
    assert.are.equal(2, units(sem))
  end))

  it("counts a unit handed to a woken waiter as taken", helper.async(function()
    local sem = lasync.BoundedSemaphore(1)
    sem:acquire()
    local t = lasync.spawn(function() sem:acquire(); sem:release() end)
    settle()
    sem:release()                    -- handed to t, which has not run yet
    assert.is_true(sem:locked())
    t:await()                        -- t took it and gave it back
    assert.matches("released too many times", catch(sem.release, sem))
    assert.are.equal(1, units(sem))
  end))
end)
