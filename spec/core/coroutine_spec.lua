-- docs/reference.md §4: lasync.coroutine, user coroutines that may await.
local lasync = require "lasync"
local helper = require "helper"
local util = require "core.util"

local co = lasync.coroutine

-- A generator of 1..n that sleeps before each value.
local function counter(n)
  return co.wrap(function()
    for i = 1, n do
      lasync.sleep(0.001)
      co.yield(i)
    end
  end)
end

describe("lasync.coroutine", function()
  it("has every function of Lua's coroutine library", function()
    for name, fn in pairs(coroutine) do
      assert.are.equal("function", type(co[name]), name)
      if not ({resume = 1, wrap = 1, status = 1, close = 1})[name] then
        assert.are.equal(fn, co[name], name)
      end
    end
  end)

  it("wrap makes a generator that may await inside a task", helper.async(function()
    local got = {}
    for v in counter(4) do got[#got + 1] = v end
    assert.are.same({1, 2, 3, 4}, got)
  end))

  it("a generator may await a future resolved later", helper.async(function()
    local f = lasync.Future()
    lasync.get_running_loop():call_later(0.002, f.set_result, f, "late", nil, 3)
    local gen = co.wrap(function() co.yield(f:await()) end)
    assert.are.same({"late", nil, 3, n = 3}, table.pack(gen()))
  end))

  it("resume passes values in and out around the awaits", helper.async(function()
    local c = co.create(function(a)
      local b = co.yield(lasync.sleep(0, a + 1))
      lasync.sleep(0.001)
      local d, e = co.yield(b * 2)
      return d, e, nil
    end)
    assert.are.same({true, 2}, {co.resume(c, 1)})
    assert.are.same({true, 20}, {co.resume(c, 10)})
    assert.are.same({true, "x", nil, nil, n = 4}, table.pack(co.resume(c, "x", nil)))
    assert.are.equal("dead", co.status(c))
    assert.are.same({false, "cannot resume dead coroutine"}, {co.resume(c)})
  end))

  it("generators nest, each awaiting", helper.async(function()
    local outer = co.wrap(function()
      for v in counter(3) do
        lasync.sleep(0)
        co.yield(v * 10)
      end
    end)
    local got = {}
    for v in outer do got[#got + 1] = v end
    assert.are.same({10, 20, 30}, got)
  end))

  it("wrap raises the generator's error as it is", helper.async(function()
    local e = {}
    local gen = co.wrap(function()
      lasync.sleep(0)
      error(e)
    end)
    assert.are.equal(e, util.error_of(gen))
    local gen2 = co.wrap(function() lasync.sleep(0) error("str", 0) end)
    assert.are.equal("str", util.error_of(gen2))
  end))

  it("resume returns false and the error", helper.async(function()
    local e = {}
    local c = co.create(function() lasync.sleep(0.001) error(e) end)
    assert.are.same({false, e}, {co.resume(c)})
    assert.are.equal("dead", co.status(c))
  end))

  it("an await failing inside a generator raises there", helper.async(function()
    local f = lasync.Future()
    lasync.get_running_loop():call_soon(f.set_exception, f, "failed future")
    local gen = co.wrap(function()
      local ok, err = pcall(f.await, f)
      co.yield(ok, err)
    end)
    assert.are.same({false, "failed future"}, {gen()})
  end))

  it("cancellation of the task reaches inside the generator", helper.async(function()
    local log = {}
    local t = lasync.spawn(function()
      local gen = co.wrap(function()
        local ok, err = pcall(lasync.sleep, 10)
        log[#log + 1] = ok
        log[#log + 1] = err.message
        error(err)
      end)
      gen()
    end)
    lasync.sleep(0)
    t:cancel("stop generating")
    local err = util.error_of(t.await, t)
    assert.is_true(lasync.CancelledError:is(err))
    assert.are.equal("stop generating", err.message)
    assert.is_true(t:cancelled())
    assert.are.same({false, "stop generating"}, log)
  end))

  it("plain yields of a generator are not taken for suspensions", helper.async(function()
    local gen = co.wrap(function()
      co.yield()
      co.yield(nil)
      co.yield(lasync.Future())
    end)
    assert.are.equal(0, select("#", gen()))
    assert.are.equal(1, select("#", gen()))
    assert.is_true(lasync.is_future(gen()))
  end))

  describe("suspended in an await of another task", function()
    -- Task a resumed the generator, which now awaits a sleep; it is a's
    -- until a's wake-up resumes it.
    local function started(gen)
      local a = lasync.spawn(function() return gen() end)
      lasync.sleep(0)
      return a
    end

    it("wrap and resume refuse it; that task still gets its value",
      helper.async(function()
        local c = co.create(function() lasync.sleep(0.002); co.yield("v") end)
        local a = started(co.wrap(function() return select(2, co.resume(c)) end))
        local b = lasync.spawn(function() return co.resume(c) end)
        assert.are.same({false, "cannot resume non-suspended coroutine"}, {b:await()})
        assert.are.equal("v", a:await())
      end))

    it("a wrap generator raises the refusal", helper.async(function()
      local gen = co.wrap(function() lasync.sleep(0.002); co.yield(1) end)
      local a = started(gen)
      assert.are.equal("cannot resume non-suspended coroutine", util.error_of(gen))
      assert.are.equal(1, a:await())
    end))

    it("status says normal, close refuses it", helper.async(function()
      local c = co.create(function() lasync.sleep(0.002) end)
      local a = started(function() return co.resume(c) end)
      assert.are.equal("normal", co.status(c))
      util.raises({"cannot close a normal coroutine"}, co.close, c)
      assert.is_true(a:await())
      assert.are.equal("dead", co.status(c))
      assert.is_true(co.close(c))
    end))
  end)

  it("a wait in a coroutine it does not drive is refused, leaving nothing",
     helper.async(function()
    local ev, lock = lasync.Event(), lasync.Lock()
    lock:acquire()
    for _, wait in ipairs {function() return ev:wait() end,
                           function() return lock:acquire() end,
                           function() return lasync.sleep(0.01) end,
                           function() return lasync.Future():await() end} do
      local ok, err = coroutine.resume(coroutine.create(wait))
      assert.is_false(ok)
      assert.matches("cannot suspend the task from this coroutine", err)
    end
    assert.are.equal("<Event [unset]>", tostring(ev))  -- no waiter left
    lock:release()
    assert.is_true(lasync.wait_for(function() return lock:acquire() end, 1))
    lock:release()
  end))

  it("a stray resume of a generator waiting in a forwarded wait raises there",
     helper.async(function()
    local ev = lasync.Event()
    local gen = coroutine.create(function() return ev:wait() end)
    local waiter = lasync.spawn(co.resume, gen)  -- driven: forwarded
    lasync.sleep(0)
    local ok, err = coroutine.resume(gen)  -- Lua's own: not a wake-up
    assert.is_false(ok)
    assert.matches("a wait of this task was resumed by coroutine.resume", err)
    assert.are.equal("<Event [unset]>", tostring(ev))  -- it left the list
    waiter:cancel()
    pcall(waiter.await, waiter)
  end))

  it("wrap checks its argument", function()
    util.raises({"bad argument #1 to 'wrap'", "function expected, got number"},
      function() co.wrap(1) end)
    -- and the core the set of driven coroutines it is given
    util.raises({"bad argument #1", "table expected, got number"},
      require("lasync.core")._set_driven, 1)
  end)
end)
