-- docs/reference.md §4: Tasks (creation, names, the yield protocol, awaiting).
local lasync = require "lasync"
local helper = require "helper"
local util = require "core.util"

describe("lasync.spawn", function()
  it("does not run the task until the creator suspends", helper.async(function()
    local ran = false
    local t = lasync.spawn(function() ran = true end)
    assert.is_false(ran)
    assert.is_false(t:done())
    lasync.sleep(0)
    assert.is_true(ran)
    assert.is_true(t:done())
  end))

  it("passes the arguments and returns every result, nils included", helper.async(function()
    local t = lasync.spawn(function(...)
      return select("#", ...), ...
    end, nil, 2, nil)
    assert.are.same({3, nil, 2, nil, n = 4}, table.pack(t:await()))
    assert.are.same({3, nil, 2, nil, n = 4}, table.pack(t:result()))
    assert.is_nil(t:exception())
  end))

  it("accepts a callable table", helper.async(function()
    local t = lasync.spawn(setmetatable({}, {__call = function(_, x)
      return x + 1
    end}), 1)
    assert.are.equal(2, t:await())
  end))

  it("is also lasync.create_task", function()
    assert.are.equal(lasync.spawn, lasync.create_task)
  end)

  it("starts tasks in the order they were spawned", helper.async(function()
    local log, ts = {}, {}
    for i = 1, 5 do ts[i] = lasync.spawn(function() log[#log + 1] = i end) end
    for i = 1, 5 do ts[i]:await() end
    assert.are.same({1, 2, 3, 4, 5}, log)
  end))

  it("raises outside a running loop", function()
    util.raises({"no running event loop"}, lasync.spawn, print)
  end)

  it("checks its argument", helper.async(function()
    util.raises({"bad argument #1 to 'spawn'", "function expected, got number"},
      function() lasync.spawn(3) end)
    util.raises({"bad argument #1 to 'spawn'", "function expected, got no value"},
      function() lasync.spawn() end)
  end))
end)

describe("loop:create_task", function()
  it("makes a task on a loop that is not running yet", function()
    local loop = lasync.new_event_loop()
    local t = loop:create_task(function(a, b) return a + b end, 1, 2)
    assert.are.equal(loop, t:get_loop())
    assert.is_false(t:done())
    assert.are.equal(3, loop:run_until_complete(t))
    loop:close()
  end)

  it("checks its arguments", function()
    local loop = lasync.new_event_loop()
    util.raises({"bad argument #1 to 'create_task'", "function expected, got string"},
      function() loop:create_task("f") end)
    util.raises({"bad argument #1 to 'create_task'", "loop expected, got number"},
      function() loop.create_task(1, print) end)
    loop:close()
  end)
end)

describe("Task names", function()
  it("default to Task-N with N increasing", helper.async(function()
    local a, b = lasync.spawn(function() end), lasync.spawn(function() end)
    local na = tonumber(a:get_name():match("^Task%-(%d+)$"))
    local nb = tonumber(b:get_name():match("^Task%-(%d+)$"))
    assert.is_truthy(na)
    assert.are.equal(na + 1, nb)
    a:await()
    b:await()
  end))

  it("are set by set_name and shown by tostring", helper.async(function()
    local t = lasync.spawn(function() lasync.sleep(0) end)
    t:set_name("worker")
    assert.are.equal("worker", t:get_name())
    assert.are.equal("<Task 'worker' pending>", tostring(t))
    t:set_name(42)
    assert.are.equal("42", t:get_name())
    t:await()
    assert.are.equal("<Task '42' finished>", tostring(t))
    local c = lasync.spawn(function() end)
    c:set_name("c")
    c:cancel()
    lasync.sleep(0)
    assert.are.equal("<Task 'c' cancelled>", tostring(c))
    util.raises({"bad argument #1 to 'set_name'", "value expected"},
      function() t:set_name() end)
  end))
end)

describe("lasync.current_task", function()
  it("is the running task inside a task", helper.async(function()
    local me = lasync.current_task()
    assert.is_true(lasync.is_task(me))
    local inner
    local t = lasync.spawn(function() inner = lasync.current_task() end)
    t:await()
    assert.are.equal(t, inner)
    assert.are.equal(me, lasync.current_task())
  end))

  it("is nil outside a loop and in a plain callback", function()
    assert.is_nil(lasync.current_task())
    local loop, seen = lasync.new_event_loop(), "unset"
    loop:call_soon(function()
      seen = lasync.current_task()
      loop:stop()
    end)
    loop:run_forever()
    loop:close()
    assert.is_nil(seen)
  end)
end)

describe("lasync.all_tasks", function()
  it("lists the pending tasks of the running loop, the current one too", helper.async(function()
    local f = lasync.Future()
    local waiting = lasync.spawn(function() f:await() end)
    local done = lasync.spawn(function() end)
    lasync.sleep(0)
    local set = {}
    for _, t in ipairs(lasync.all_tasks()) do set[t] = true end
    assert.is_true(set[lasync.current_task()])
    assert.is_true(set[waiting])
    assert.is_nil(set[done])
    f:set_result()
    waiting:await()
    set = {}
    for _, t in ipairs(lasync.all_tasks()) do set[t] = true end
    assert.is_nil(set[waiting])
  end))

  it("takes a loop, running or not", function()
    local loop = lasync.new_event_loop()
    local t = loop:create_task(function() end)
    assert.are.same({t}, require("lasync.core").all_tasks(loop))
    loop:run_until_complete(t)
    assert.are.same({}, require("lasync.core").all_tasks(loop))
    loop:close()
    assert.are.same({}, require("lasync.core").all_tasks(loop))
  end)

  it("raises outside a running loop", function()
    util.raises({"no running event loop"}, lasync.all_tasks)
  end)
end)

describe("Task:get_coro", function()
  it("is the task's Lua thread", helper.async(function()
    local co
    local t = lasync.spawn(function() co = coroutine.running() lasync.sleep(0) end)
    lasync.sleep(0)
    assert.are.equal(co, t:get_coro())
    assert.are.equal("suspended", coroutine.status(t:get_coro()))
    t:await()
    assert.are.equal("thread", type(lasync.current_task():get_coro()))
  end))
end)

describe("Task as a Future", function()
  it("cannot be resolved by callers", helper.async(function()
    local t = lasync.spawn(function() return 1 end)
    util.raises({"Task's result is set by its function"}, t.set_result, t, 2)
    util.raises({"Task's result is set by its function"}, t.set_exception, t, "e")
    assert.are.equal(1, t:await())
  end))

  it("runs its done callbacks when it finishes", helper.async(function()
    local got
    local t = lasync.spawn(function() return "r" end)
    t:add_done_callback(function(x) got = x end)
    t:await()
    lasync.sleep(0)
    assert.are.equal(t, got)
  end))

  it("raises its error from await and result, as it is", helper.async(function()
    local e = {}
    local t = lasync.spawn(function() lasync.sleep(0) error(e) end)
    assert.are.equal(e, util.error_of(t.await, t))
    assert.are.equal(e, util.error_of(t.result, t))
    assert.are.equal(e, t:exception())
    local s = lasync.spawn(function() error("msg", 0) end)
    assert.are.equal("msg", util.error_of(s.await, s))
  end))

  it("can be awaited by several tasks", helper.async(function()
    local t = lasync.spawn(function() lasync.sleep(0.001) return "v" end)
    local a = lasync.spawn(function() return t:await() end)
    local b = lasync.spawn(function() return t:await() end)
    assert.are.equal("v", a:await())
    assert.are.equal("v", b:await())
  end))
end)

describe("the yield protocol", function()
  it("a task that yields nothing gives way for one iteration", helper.async(function()
    local log = {}
    lasync.get_running_loop():call_soon(function() log[#log + 1] = "callback" end)
    coroutine.yield()
    log[#log + 1] = "task"
    assert.are.same({"callback", "task"}, log)
  end))

  it("a task that yields a Future waits for it", helper.async(function()
    local f = lasync.Future()
    lasync.get_running_loop():call_later(0.002, f.set_result, f, 1)
    coroutine.yield(f)
    assert.is_true(f:done())
  end))

  it("a task that yields a done Future goes on at the next iteration", helper.async(function()
    local f = lasync.Future()
    f:set_result()
    coroutine.yield(f)
    assert.is_true(f:done())
  end))

  -- a plain yield has no continuation: the CancelledError is raised at the
  -- first instruction after it, as await would raise it
  local function caught(...)
    local ok, err = pcall(...)
    return ok, tostring(err)
  end

  it("a cancel raises CancelledError where a task yielded nothing", helper.async(function()
    local t = lasync.spawn(function()
      local ok, err = caught(function() coroutine.yield() end)
      return ok, err, lasync.sleep(0, "goes on")
    end)
    lasync.sleep(0)
    t:cancel("stop")
    assert.are.same({false, "CancelledError: stop", "goes on"}, {t:await()})
    assert.is_false(t:cancelled())
    local u = lasync.spawn(function() coroutine.yield() end)
    lasync.sleep(0)
    u:cancel()
    util.raises({"CancelledError"}, u.await, u)
    assert.is_true(u:cancelled())
  end))

  it("a cancel raises CancelledError where a task yielded a Future", helper.async(function()
    local f, inner = lasync.Future(), lasync.spawn(lasync.sleep, 10)
    local a = lasync.spawn(caught, function() coroutine.yield(f) end)
    local b = lasync.spawn(caught, function() coroutine.yield(inner) end)
    lasync.sleep(0)
    a:cancel("a")
    b:cancel("b")
    assert.are.same({false, "CancelledError: a"}, {a:await()})
    assert.are.same({false, "CancelledError: b"}, {b:await()})
    assert.is_true(f:cancelled())
    assert.is_true(inner:cancelled())  -- the cancel went down the chain
  end))

  it("a cancel thrown at a plain yield leaves the thread's hook as it was",
     helper.async(function()
    local calls = 0
    local function hook() calls = calls + 1 end
    local t = lasync.spawn(function()
      debug.sethook(hook, "", 1000)
      local ok = pcall(function() coroutine.yield() end)
      local h, mask, count = debug.gethook()
      debug.sethook()
      return ok, h == hook, mask, count
    end)
    lasync.sleep(0)
    t:cancel()
    assert.are.same({false, true, "", 1000}, {t:await()})
  end))

  it("yielding anything else fails the task with an error saying so", helper.async(function()
    for _, v in ipairs {{42}, {"s"}, {{}}, {true}, {lasync.Future(), 1}} do
      local t = lasync.spawn(function() coroutine.yield(table.unpack(v)) end)
      local err = util.error_of(t.await, t)
      assert.is_truthy(err:find("task yielded an unexpected value (" .. type(v[1]) .. ")", 1, true))
      assert.is_truthy(err:find("yield a Future", 1, true))
    end
  end))

  it("a task cannot await itself", helper.async(function()
    local t = lasync.spawn(function() return lasync.current_task():await() end)
    util.raises({"task cannot await itself"}, t.await, t)
  end))

  it("a task cannot await a future of another loop", helper.async(function()
    local other = lasync.new_event_loop()
    local f = other:create_future()
    local t = lasync.spawn(function() return f:await() end)
    util.raises({"task awaited a future of another loop"}, t.await, t)
    other:close()
  end))
end)

describe("await inside a task", function()
  it("works from nested plain functions", helper.async(function()
    local function c(x) return lasync.sleep(0.001, x * 2) end
    local function b(x) return c(x + 1) end
    local function a(x) return b(x) + 1 end
    assert.are.equal(7, a(2))
  end))

  it("works inside pcall, and pcall catches the error raised there", helper.async(function()
    local f = lasync.Future()
    lasync.get_running_loop():call_soon(f.set_exception, f, "inner")
    local ok, err = pcall(function() return f:await() end)
    assert.is_false(ok)
    assert.are.equal("inner", err)
    local ok2, v = pcall(lasync.sleep, 0.001, "after")
    assert.is_true(ok2)
    assert.are.equal("after", v)
  end))

  it("works inside xpcall and in its handler", helper.async(function()
    local ok, v = xpcall(function() lasync.sleep(0) error("x", 0) end,
      function(e) return e .. "!" end)
    assert.is_false(ok)
    assert.are.equal("x!", v)
  end))

  it("works inside metamethods", helper.async(function()
    local mt = {
      __index = function(_, k) return lasync.sleep(0.001, k .. "!") end,
      __add = function(a, b) return lasync.sleep(0, a.v + b.v) end,
      __lt = function(a, b) lasync.sleep(0) return a.v < b.v end,
      __call = function(_, x) return lasync.sleep(0, x) end,
    }
    local a, b = setmetatable({v = 1}, mt), setmetatable({v = 2}, mt)
    assert.are.equal("key!", a.key)
    assert.are.equal(3, a + b)
    assert.is_true(a < b)
    assert.are.equal("c", a("c"))
  end))

  it("works in a generic for iterator", helper.async(function()
    local function gen(n)
      local i = 0
      return function()
        i = i + 1
        if i <= n then return lasync.sleep(0, i) end
      end
    end
    local sum = 0
    for v in gen(4) do sum = sum + v end
    assert.are.equal(10, sum)
  end))

  it("says so when a C function is in the way", helper.async(function()
    util.raises({"cannot suspend the task here"}, table.sort, {3, 2, 1},
      function(x, y) lasync.sleep(0) return x < y end)
  end))

  it("lets a done future be awaited with a C function in the way",
     helper.async(function()
    local f, t = lasync.Future(), {3, 2, 1}
    f:set_result(true)
    table.sort(t, function(x, y) return f:await() and x < y end)
    assert.are.same({1, 2, 3}, t)
  end))
end)

describe("a pending task without references", function()
  it("is kept alive by the loop and completes", helper.async(function()
    local done, weak = lasync.Future(), setmetatable({}, {__mode = "v"})
    weak[1] = lasync.spawn(function()
      lasync.sleep(0.005)
      done:set_result("finished")
    end)
    for _ = 1, 3 do collectgarbage() end
    assert.is_not_nil(weak[1])
    assert.are.equal("finished", done:await())
  end))

  it("waiting on a future nobody else holds still completes", helper.async(function()
    local result = lasync.Future()
    do
      local f = lasync.Future()
      lasync.spawn(function() result:set_result(f:await()) end)
      lasync.get_running_loop():call_later(0.005, f.set_result, f, 7)
    end
    collectgarbage()
    collectgarbage()
    assert.are.equal(7, result:await())
  end))
end)
