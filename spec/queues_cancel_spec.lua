-- Queues under cancellation, timeouts and shutdown (docs/reference.md §7): a getter or
-- putter that is cancelled leaves no trace; shutdown(immediate) as in
-- asyncio 3.13.
local lasync = require "lasync"
local helper = require "helper"

local catch = helper.error_of

local settle = helper.settle

local is_cancelled = helper.is_cancelled

local function is_shut_down(err)
  return lasync.QueueShutDown:is(err)
end

-- The outcome of a task whose function may raise: ok, value or error.
local function outcome(t)
  return pcall(t.await, t)
end

for _, kind in ipairs {"Queue", "LifoQueue", "PriorityQueue"} do
  local New = lasync[kind]

  describe(kind .. " under cancellation", function()
    it("forgets a getter cancelled while waiting", helper.async(function()
      local q = New()
      local a, b = lasync.spawn(q.get, q), lasync.spawn(q.get, q)
      settle()
      a:cancel()
      assert.is_true(is_cancelled(catch(a.await, a)))
      assert.are.equal(("<%s maxsize=0 qsize=0 getters=1>"):format(kind), tostring(q))
      q:put("x")
      assert.are.equal("x", b:await())
      assert.is_true(q:empty())
    end))

    it("passes an item woken for a cancelled getter to the next", helper.async(function()
      local q = New()
      local a, b = lasync.spawn(q.get, q), lasync.spawn(q.get, q)
      settle()
      q:put("x")   -- wakes a ...
      a:cancel()   -- ... which is cancelled before it runs
      assert.is_true(is_cancelled(catch(a.await, a)))
      assert.are.equal("x", b:await())
      assert.is_true(q:empty())
      assert.are.equal(("<%s maxsize=0 qsize=0>"):format(kind), tostring(q))
    end))

    it("keeps getters in turn when a put skipped a cancelled one", helper.async(function()
      local q, ts = New(), {}
      for i = 1, 4 do ts[i] = lasync.spawn(q.get, q) end
      settle()
      ts[1]:cancel()
      q:put("x")   -- skips 1 (cancelled, not run yet) and wakes 2 only
      assert.is_true(is_cancelled(catch(ts[1].await, ts[1])))
      assert.are.equal("x", ts[2]:await())
      settle()
      q:put("y")
      settle()
      q:put("z")
      assert.are.equal("y", ts[3]:await())
      assert.are.equal("z", ts[4]:await())
    end))

    it("keeps the others in turn when any getter leaves", helper.async(function()
      local q, ts = New(), {}
      for i = 1, 8 do ts[i] = lasync.spawn(q.get, q) end
      settle()
      for _, i in ipairs {4, 3, 1, 8, 6, 7} do  -- middle, head, tail, ...
        ts[i]:cancel()
        settle()
      end
      assert.are.equal(("<%s maxsize=0 qsize=0 getters=2>"):format(kind), tostring(q))
      q:put("a")
      settle()
      q:put("b")
      assert.are.equal("a", ts[2]:await())
      assert.are.equal("b", ts[5]:await())
      for i = 1, 8 do pcall(ts[i].await, ts[i]) end
      -- no slot left behind (white box)
      assert.are.same({head = 1, tail = 0}, q._getters:list())
    end))

    it("keeps the item when the only woken getter is cancelled", helper.async(function()
      local q = New()
      local a = lasync.spawn(q.get, q)
      settle()
      q:put_nowait("x")
      a:cancel()
      assert.is_true(is_cancelled(catch(a.await, a)))
      assert.are.equal(1, q:qsize())
      assert.are.equal("x", q:get())
    end))

    it("does not add the item of a putter cancelled while waiting", helper.async(function()
      local q = New(1)
      q:put("first")
      local p = lasync.spawn(q.put, q, "never")
      settle()
      p:cancel()
      assert.is_true(is_cancelled(catch(p.await, p)))
      assert.are.equal("first", q:get())
      settle()
      assert.is_true(q:empty())
      assert.are.equal(("<%s maxsize=1 qsize=0>"):format(kind), tostring(q))
    end))

    it("passes a free slot woken for a cancelled putter to the next", helper.async(function()
      local q = New(1)
      q:put("first")
      local a = lasync.spawn(q.put, q, "a")
      local b = lasync.spawn(q.put, q, "b")
      settle()
      assert.are.equal("first", q:get_nowait())   -- wakes a ...
      a:cancel()                                  -- ... cancelled before it runs
      assert.is_true(is_cancelled(catch(a.await, a)))
      b:await()
      assert.are.equal(1, q:qsize())
      assert.are.equal("b", q:get())
    end))

    it("loses and duplicates nothing under timeouts", helper.async(function()
      local q = New(2)
      local got, sent = {}, {}
      local consumer = lasync.spawn(function()
        while #got < 20 do
          local ok, v = pcall(lasync.timeout, 0.0005, q.get, q)
          if ok then got[#got + 1] = v end
        end
      end)
      local i = 0
      while #sent < 20 do
        i = i + 1
        if pcall(lasync.wait_for, function() return q:put(i) end, 0.0005) then
          sent[#sent + 1] = i
        end
        if i % 7 == 0 then lasync.sleep(0.001) end
      end
      consumer:await()
      table.sort(got)
      assert.are.same(sent, got)
      assert.is_true(q:empty())
      assert.are.equal(("<%s maxsize=2 qsize=0>"):format(kind), tostring(q))
    end))

    it("raises from a callback's get that would wait, leaving no getter", helper.async(function()
      local q, reports = New(), helper.reports()
      lasync.get_running_loop():call_soon(q.get, q)
      settle()
      assert.are.equal(1, #reports)
      assert.matches("get called outside a task", tostring(reports[1].exception))
      assert.are.equal(("<%s maxsize=0 qsize=0>"):format(kind), tostring(q))
      q:put(1)
      assert.are.equal(1, q:get())
    end))

    it("leaves no getter behind when a timeout ends the wait", helper.virtual(function()
      local q = New()
      assert.is_true(lasync.TimeoutError:is(catch(lasync.timeout, 3, q.get, q)))
      assert.is_true(lasync.TimeoutError:is(catch(lasync.wait_for,
        function() return q:get() end, 3)))
      assert.are.equal(("<%s maxsize=0 qsize=0>"):format(kind), tostring(q))
      q:put(1)
      assert.are.equal(1, lasync.timeout(3, q.get, q))
    end))
  end)

  describe(kind .. ":shutdown", function()
    it("makes put and put_nowait raise QueueShutDown", helper.async(function()
      local q = New(1)
      assert.is_nil(q:shutdown())
      local err = catch(q.put, q, 1)
      assert.is_true(is_shut_down(err))
      assert.are.equal("QueueShutDown: Queue is shut down", tostring(err))
      assert.is_true(is_shut_down(catch(q.put_nowait, q, 1)))
      assert.is_true(q:empty())
    end))

    it("lets get take the items left, then raise", helper.async(function()
      local q = New()
      q:put(1); q:put(2)
      q:shutdown(false)
      assert.are.equal(2, q:qsize())
      q:get(); q:get_nowait()
      assert.is_true(is_shut_down(catch(q.get, q)))
      assert.is_true(is_shut_down(catch(q.get_nowait, q)))
      q:task_done(); q:task_done()
      assert.is_true(q:join())
    end))

    it("empties the queue at once when immediate", helper.async(function()
      local q = New()
      for i = 1, 3 do q:put(i) end
      q:get()  -- got but not done: join still waits for it
      local j = lasync.spawn(q.join, q)
      settle()
      q:shutdown(true)
      assert.are.equal(0, q:qsize())
      assert.is_true(is_shut_down(catch(q.get, q)))
      assert.is_true(is_shut_down(catch(q.get_nowait, q)))
      settle()
      assert.is_false(j:done())
      q:task_done()
      assert.is_true(j:await())
    end))

    it("releases join when immediate removes the last unfinished items", helper.async(function()
      local q = New()
      q:put(1); q:put(2)
      local j = lasync.spawn(q.join, q)
      settle()
      q:shutdown(true)
      assert.is_true(j:await())
      assert.matches("called too many times", catch(q.task_done, q))
    end))

    it("wakes the waiting getters and putters, which raise", helper.async(function()
      local empty, full = New(), New(1)
      full:put("kept")
      local getters = {lasync.spawn(empty.get, empty), lasync.spawn(empty.get, empty)}
      local putter = lasync.spawn(full.put, full, "never")
      settle()
      empty:shutdown()
      full:shutdown()
      for _, g in ipairs(getters) do
        local ok, err = outcome(g)
        assert.is_false(ok)
        assert.is_true(is_shut_down(err))
      end
      local ok, err = outcome(putter)
      assert.is_false(ok)
      assert.is_true(is_shut_down(err))
      assert.are.equal("kept", full:get())
      assert.are.equal(("<%s maxsize=1 qsize=0 shutdown>"):format(kind), tostring(full))
    end))

    it("gives a woken getter an item put before the shutdown", helper.async(function()
      local q = New()
      local g = lasync.spawn(q.get, q)
      settle()
      q:put("last")
      q:shutdown()
      assert.are.equal("last", g:await())
    end))

    it("checks immediate", helper.async(function()
      local q = New()
      assert.matches("bad argument #1 to 'shutdown' %(boolean or nil expected, got number%)",
                     catch(q.shutdown, q, 1))
      assert.is_false(is_shut_down(catch(q.get_nowait, q)))
    end))
  end)
end
