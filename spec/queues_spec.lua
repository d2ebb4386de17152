-- lasync.Queue, LifoQueue and PriorityQueue (docs/reference.md §7): construction,
-- order, waiting, errors, task_done/join, printing and the fast paths that
-- make no Future. Cancellation, timeouts and shutdown:
-- queues_cancel_spec.lua.
local lasync = require "lasync"
local helper = require "helper"

local catch = helper.error_of

local settle = helper.settle

-- Every item of q, taken without waiting.
local function drain(q)
  local out = {}
  while not q:empty() do out[#out + 1] = q:get_nowait() end
  return out
end

local CLASSES = {"Queue", "LifoQueue", "PriorityQueue"}

for _, kind in ipairs(CLASSES) do
  local New = lasync[kind]

  describe("lasync." .. kind, function()
    it("is unbounded by default", helper.async(function()
      local q = New()
      assert.are.equal(0, q.maxsize)
      for i = 1, 100 do q:put_nowait(i) end
      assert.is_false(q:full())
      assert.are.equal(100, q:qsize())
      assert.are.equal(0, New(0).maxsize)
    end))

    it("is full at maxsize", helper.async(function()
      local q = New(2)
      assert.are.equal(2, q.maxsize)
      assert.is_true(q:empty())
      q:put(1)
      assert.is_false(q:empty())
      assert.is_false(q:full())
      q:put(2)
      assert.is_true(q:full())
      assert.are.equal(2, q:qsize())
      assert.are.equal(3, New(3.0).maxsize)
    end))

    it("rejects a maxsize that is not a non-negative integer", function()
      for _, bad in ipairs {-1, 1.5, math.huge} do
        assert.matches(("bad argument #1 to '%s' %%(non%%-negative integer or nil expected, got ")
                       :format(kind), catch(New, bad))
      end
      assert.matches("got string", catch(New, "3"))
    end)

    it("raises QueueFull and QueueEmpty from the nowait methods", helper.async(function()
      local q = New(1)
      local err = catch(q.get_nowait, q)
      assert.is_true(lasync.QueueEmpty:is(err))
      assert.are.equal("QueueEmpty: Queue is empty", tostring(err))
      assert.is_nil(q:put_nowait("x"))
      err = catch(q.put_nowait, q, "y")
      assert.is_true(lasync.QueueFull:is(err))
      assert.are.equal("QueueFull: Queue is full", tostring(err))
      assert.are.equal(1, q:qsize())
      assert.are.equal("x", q:get_nowait())
    end))

    it("holds any value but nil, false included", helper.async(function()
      local q = New(0, kind == "PriorityQueue" and function() return false end or nil)
      q:put(false)
      q:put_nowait(false)
      assert.are.same({false, false}, drain(q))
      local err = catch(function() q:put(nil) end)
      assert.matches("^spec/queues_spec%.lua:%d+: bad argument #1 to 'put' "
                     .. "%(a queue item must not be nil%)$", err)
      assert.matches("bad argument #1 to 'put_nowait' %(a queue item must not be nil%)",
                     catch(q.put_nowait, q))
      assert.are.equal(0, q:qsize())
    end))

    it("makes a putter wait while full, in turn", helper.async(function()
      local q, ts = New(1), {}
      q:put(0)
      for i = 1, 3 do ts[i] = lasync.spawn(q.put, q, i) end
      settle()
      assert.are.equal(("<%s maxsize=1 qsize=1 putters=3>"):format(kind), tostring(q))
      for i = 0, 3 do
        assert.are.equal(i, q:get())
        settle()
      end
      for i = 1, 3 do assert.is_true(ts[i]:done()) end
      assert.is_true(q:empty())
    end))

    it("makes a getter wait while empty, in turn", helper.async(function()
      local q, ts = New(), {}
      for i = 1, 3 do ts[i] = lasync.spawn(q.get, q) end
      settle()
      assert.are.equal(("<%s maxsize=0 qsize=0 getters=3>"):format(kind), tostring(q))
      for i = 1, 3 do
        q:put(i * 10)
        settle()
        assert.are.equal(i * 10, ts[i]:result())
      end
      assert.are.equal(("<%s maxsize=0 qsize=0>"):format(kind), tostring(q))
    end))

    it("passes items from producers to consumers one for one", helper.async(function()
      local q, got = New(2), {}
      local producers, consumers = {}, {}
      for p = 1, 3 do
        producers[p] = lasync.spawn(function()
          for i = 1, 50 do q:put(p * 1000 + i) end
        end)
      end
      for c = 1, 2 do
        consumers[c] = lasync.spawn(function()
          for _ = 1, 75 do
            local v = q:get()  -- before #got is read: other consumers add meanwhile
            got[#got + 1] = v
          end
        end)
      end
      for p = 1, 3 do producers[p]:await() end
      for c = 1, 2 do consumers[c]:await() end
      table.sort(got)
      local want = {}
      for p = 1, 3 do for i = 1, 50 do want[#want + 1] = p * 1000 + i end end
      assert.are.same(want, got)
    end))

    it("join waits until task_done was called for every item", helper.async(function()
      local q = New()
      assert.is_true(q:join())  -- nothing put: at once
      q:put(1); q:put(2)
      local j1, j2 = lasync.spawn(q.join, q), lasync.spawn(q.join, q)
      settle()
      q:get(); q:get()
      settle()
      assert.is_false(j1:done())  -- got, but not done
      q:task_done()
      settle()
      assert.is_false(j1:done())
      assert.is_nil(q:task_done())
      assert.is_true(j1:await())
      assert.is_true(j2:await())
      assert.is_true(q:join())
    end))

    it("raises when task_done is called more than items were put", helper.async(function()
      local q = New()
      local err = catch(function() q:task_done() end)
      assert.matches("^spec/queues_spec%.lua:%d+: task_done%(%) called too many times$", err)
      q:put(1)
      q:get()
      q:task_done()
      assert.matches("called too many times", catch(q.task_done, q))
    end))

    it("forgets a joiner cancelled while waiting", helper.async(function()
      local q = New()
      q:put(1)
      assert.is_true(lasync.TimeoutError:is(catch(lasync.timeout, 0.003, q.join, q)))
      local j = lasync.spawn(q.join, q)
      settle()
      q:get()
      q:task_done()
      assert.is_true(j:await())
    end))

    it("names the method and the self it wants", function()
      local q = New()
      for _, m in ipairs {"put", "put_nowait", "get", "get_nowait", "qsize", "empty",
                          "full", "task_done", "join", "shutdown"} do
        local f = q[m]
        assert.matches(("calling '%s' on bad self %%(queue expected, got nil%%)"):format(m),
                       catch(f))
        assert.matches("got number", catch(f, 1))
        assert.matches("got Lock", catch(f, lasync.Lock()))
      end
      assert.matches("queue expected", catch(getmetatable(q).__tostring, 1))
    end)
  end)
end

describe("queue order", function()
  it("Queue is first in, first out", helper.async(function()
    local q = lasync.Queue()
    for i = 1, 5 do q:put(i) end
    assert.are.same({1, 2, 3, 4, 5}, drain(q))
    for i = 6, 8 do q:put(i) end  -- again after it emptied
    q:get()
    q:put(9)
    assert.are.same({7, 8, 9}, drain(q))
  end))

  it("LifoQueue is last in, first out", helper.async(function()
    local q = lasync.LifoQueue()
    for i = 1, 5 do q:put(i) end
    assert.are.same({5, 4, 3, 2, 1}, drain(q))
  end))

  it("PriorityQueue gives the least item first", helper.async(function()
    local q = lasync.PriorityQueue()
    math.randomseed(7)
    local want = {}
    for i = 1, 200 do
      local v = math.random(1, 50)
      want[#want + 1] = v
      q:put(v)
      if i % 3 == 0 then  -- interleave gets with puts
        table.sort(want)
        assert.are.equal(table.remove(want, 1), q:get())
      end
    end
    table.sort(want)
    assert.are.same(want, drain(q))
  end))

  it("PriorityQueue orders by the less function given", helper.async(function()
    local q = lasync.PriorityQueue(0, function(a, b) return a.pri > b.pri end)
    for _, p in ipairs {3, 9, 1, 7, 5} do q:put({pri = p}) end
    local got = {}
    for i, item in ipairs(drain(q)) do got[i] = item.pri end
    assert.are.same({9, 7, 5, 3, 1}, got)
    local callable = setmetatable({}, {__call = function(_, a, b) return #a < #b end})
    q = lasync.PriorityQueue(nil, callable)
    for _, s in ipairs {"ccc", "a", "bb"} do q:put(s) end
    assert.are.same({"a", "bb", "ccc"}, drain(q))
  end))

  it("PriorityQueue checks less", function()
    assert.matches("bad argument #2 to 'PriorityQueue' %(function or nil expected, got number%)",
                   catch(lasync.PriorityQueue, 0, 5))
    assert.matches("got table", catch(lasync.PriorityQueue, 0, {}))
  end)

  it("PriorityQueue refuses a less that uses the queue", helper.async(function()
    local q, use
    q = lasync.PriorityQueue(0, function(a, b)
      if use then use() end
      return a < b
    end)
    for _, v in ipairs {5, 2, 8} do q:put(v) end
    for _, f in ipairs {function() q:put_nowait(0) end, function() q:get_nowait() end,
                        function() q:shutdown(true) end} do
      use = f
      assert.matches("a PriorityQueue's less must not use the queue", catch(q.put, q, 1))
      assert.matches("a PriorityQueue's less must not use the queue", catch(q.get, q))
    end
    use = nil
    assert.are.same({2, 5, 8}, drain(q))
  end))

  it("PriorityQueue stays whole when less raises", helper.async(function()
    local q = lasync.PriorityQueue()
    for _, v in ipairs {5, 2, 8} do q:put(v) end
    assert.matches("attempt to compare", catch(q.put, q, {}))
    assert.are.equal(3, q:qsize())
    assert.are.same({2, 5, 8}, drain(q))
    local failing = false
    q = lasync.PriorityQueue(0, function(a, b)
      if failing then error("no order today", 0) end
      return a < b
    end)
    for v = 20, 1, -1 do q:put(v) end
    failing = true
    assert.are.equal("no order today", catch(q.get, q))
    assert.are.equal("no order today", catch(q.put, q, 0))
    failing = false
    assert.are.equal(20, q:qsize())
    local want = {}
    for v = 1, 20 do want[v] = v end
    assert.are.same(want, drain(q))
  end))
end)

describe("queue printing", function()
  it("shows the class, maxsize, size, waiters and shutdown", helper.async(function()
    local q = lasync.Queue()
    for i = 1, 3 do q:put(i) end
    assert.are.equal("<Queue maxsize=0 qsize=3>", tostring(q))
    local full = lasync.LifoQueue(1)
    full:put(1)
    local t = lasync.spawn(full.put, full, 2)
    settle()
    full:shutdown()
    assert.are.equal("<LifoQueue maxsize=1 qsize=1 shutdown>", tostring(full))
    assert.is_true(lasync.QueueShutDown:is(catch(t.await, t)))
    assert.are.equal("<PriorityQueue maxsize=5 qsize=0>", tostring(lasync.PriorityQueue(5)))
  end))
end)

describe("queue fast paths", function()
  local futures_made = helper.futures_made

  it("make no Future when nothing has to wait", helper.async(function()
    local qs = {lasync.Queue(), lasync.Queue(3), lasync.LifoQueue(3), lasync.PriorityQueue()}
    assert.are.equal(0, futures_made(function()
      for _, q in ipairs(qs) do
        for i = 1, 2 do q:put(i) end
        q:put_nowait(3)
        for _ = 1, 2 do q:get() end
        q:get_nowait()
        for _ = 1, 3 do q:task_done() end
        q:join()
      end
    end))
  end))

  it("make none when a task has to wait either: it parks", helper.async(function()
    local core = require "lasync.core"
    local q = lasync.Queue(1)
    local t = lasync.spawn(q.get, q)  -- a Task counts as a Future
    assert.are.equal(0, futures_made(function() settle() end))
    assert.are.equal("parked", core._park_state(t))
    q:put("x")
    assert.are.equal("woken", core._park_state(t))
    assert.are.equal("x", t:await())
    assert.is_nil(core._park_state(t))
  end))
end)
