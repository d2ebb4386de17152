-- docs/reference.md §2: call_soon, call_later, call_at and their handles.
local lasync = require "lasync"
local helper = require "helper"
local util = require "core.util"

-- Runs the loop until the callbacks scheduled by setup(loop, log) have run
-- and returns the log (setup must arrange for loop:stop()).
local function run_with(setup)
  local loop, log = lasync.new_event_loop(), {}
  setup(loop, log)
  loop:run_forever()
  loop:close()
  return log
end

describe("loop:call_soon", function()
  it("runs callbacks in FIFO order with their arguments, nils included", function()
    local log = run_with(function(loop, log)
      for i = 1, 5 do
        loop:call_soon(function(...) log[#log + 1] = table.pack(...) end, i, nil, "x", nil)
      end
      loop:call_soon(loop.stop, loop)
    end)
    assert.are.equal(5, #log)
    for i = 1, 5 do assert.are.same({i, nil, "x", nil, n = 4}, log[i]) end
  end)

  it("returns a Handle that is not cancelled", function()
    local loop = lasync.new_event_loop()
    local h = loop:call_soon(print)
    assert.is_false(h:cancelled())
    assert.are.equal("<Handle>", tostring(h))
    assert.is_nil(h.when)
    loop:close()
  end)

  it("accepts a callable table", function()
    local got = run_with(function(loop, log)
      loop:call_soon(setmetatable({}, {__call = function(_, v)
        log[#log + 1] = v
        loop:stop()
      end}), "called")
    end)
    assert.are.same({"called"}, got)
  end)

  it("runs a callback scheduled by a callback in the next iteration", helper.async(function()
    local loop, log = lasync.get_running_loop(), {}
    loop:call_soon(function()
      log[#log + 1] = "a"
      loop:call_soon(function() log[#log + 1] = "b" end)
    end)
    lasync.sleep(0)  -- queued after a: runs in the iteration after a's
    log[#log + 1] = "task"
    lasync.sleep(0)
    assert.are.same({"a", "task", "b"}, log)
  end))

  it("does not run a cancelled handle", function()
    local log = run_with(function(loop, log)
      local h = loop:call_soon(function() log[#log + 1] = "cancelled one" end)
      loop:call_soon(function() log[#log + 1] = "kept" end)
      h:cancel()
      h:cancel()  -- idempotent
      assert.is_true(h:cancelled())
      assert.are.equal("<Handle cancelled>", tostring(h))
      loop:call_soon(loop.stop, loop)
    end)
    assert.are.same({"kept"}, log)
  end)

  it("can be cancelled by an earlier callback of the same iteration", function()
    local log = run_with(function(loop, log)
      local h2
      loop:call_soon(function() h2:cancel() end)
      h2 = loop:call_soon(function() log[#log + 1] = "h2" end)
      loop:call_soon(loop.stop, loop)
    end)
    assert.are.same({}, log)
  end)

  it("checks its arguments", function()
    local loop = lasync.new_event_loop()
    util.raises({"bad argument #1 to 'call_soon'", "function expected, got number"},
      function() loop:call_soon(1) end)
    util.raises({"bad argument #1 to 'call_soon'", "function expected, got no value"},
      function() loop:call_soon() end)
    util.raises({"loop expected, got table"}, loop.call_soon, {}, print)
    loop:close()
  end)
end)

describe("loop:call_later and loop:call_at", function()
  it("run timers by deadline", function()
    local log = run_with(function(loop, log)
      local function add(v) log[#log + 1] = v end
      loop:call_later(0.02, add, "c")
      loop:call_later(0.01, add, "b")
      loop:call_later(0, add, "a")
      loop:call_at(loop:time() + 0.015, add, "b2")
      loop:call_later(0.025, loop.stop, loop)
    end)
    assert.are.same({"a", "b", "b2", "c"}, log)
  end)

  it("run timers with the same deadline in scheduling order", function()
    local log = run_with(function(loop, log)
      local when = loop:time() + 0.005
      for i = 1, 20 do
        loop:call_at(when, function() log[#log + 1] = i end)
      end
      loop:call_at(when, loop.stop, loop)
    end)
    assert.are.same({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                     17, 18, 19, 20}, log)
  end)

  it("never run a timer before its deadline", function()
    local log = run_with(function(loop, log)
      local h
      h = loop:call_later(0.01, function()
        log[#log + 1] = loop:time() >= h:when()
        loop:stop()
      end)
    end)
    assert.are.same({true}, log)
  end)

  it("run a timer with a negative delay or a past deadline soon", function()
    local log = run_with(function(loop, log)
      loop:call_later(-1, function() log[#log + 1] = "later" end)
      loop:call_at(0, function() log[#log + 1] = "at" end)
      loop:call_later(0.001, loop.stop, loop)
    end)
    assert.are.same({"at", "later"}, log)  -- 0 is before now - 1
  end)

  it("pass the arguments, nils included", function()
    local log = run_with(function(loop, log)
      loop:call_later(0, function(...)
        log[#log + 1] = table.pack(...)
        loop:stop()
      end, nil, 2, nil)
    end)
    assert.are.same({{nil, 2, nil, n = 3}}, log)
  end)

  it("return a TimerHandle whose when() is the deadline", function()
    local loop = lasync.new_event_loop()
    local h = loop:call_at(1234.5, print)
    assert.are.equal(1234.5, h:when())
    local now = loop:time()
    local h2 = loop:call_later(10, print)
    assert.is_true(h2:when() >= now + 10 and h2:when() <= loop:time() + 10)
    assert.is_truthy(tostring(h):find("^<TimerHandle when=1234%.5"))
    h:cancel()
    assert.is_truthy(tostring(h):find("^<TimerHandle cancelled when="))
    util.raises({"TimerHandle expected"}, h.when, loop:call_soon(print))
    loop:close()
  end)

  it("do not run a cancelled timer", function()
    local log = run_with(function(loop, log)
      local h = loop:call_later(0.001, function() log[#log + 1] = "x" end)
      loop:call_later(0.002, function() log[#log + 1] = "y" end)
      h:cancel()
      assert.is_true(h:cancelled())
      loop:call_later(0.005, loop.stop, loop)
    end)
    assert.are.same({"y"}, log)
  end)

  it("do not run a timer cancelled once due but not yet run", function()
    local log = run_with(function(loop, log)
      local when = loop:time()
      local h2
      loop:call_at(when, function() h2:cancel() end)
      h2 = loop:call_at(when, function() log[#log + 1] = "h2" end)
      loop:call_later(0.002, loop.stop, loop)
    end)
    assert.are.same({}, log)
  end)

  it("keep order and run only live timers when many are cancelled", function()
    local log = run_with(function(loop, log)
      local base, hs = loop:time() + 0.005, {}
      for i = 1, 300 do
        hs[i] = loop:call_at(base + (i % 7) * 0.001, function()
          log[#log + 1] = i
        end)
      end
      for i = 1, 300 do
        if i % 3 ~= 0 then hs[i]:cancel() end  -- 200 of 300: compaction
      end
      for i = 1, 300, 50 do hs[i]:cancel() end  -- some twice
      loop:call_at(base + 0.01, loop.stop, loop)
    end)
    local want = {}
    for k = 0, 6 do
      for i = 3, 300, 3 do
        if i % 7 == k and i % 50 ~= 1 then want[#want + 1] = i end
      end
    end
    assert.are.same(want, log)
  end)

  it("let go of cancelled timers without waiting for their deadline", function()
    local loop = lasync.new_event_loop()
    local weak = setmetatable({}, {__mode = "k"})
    for _ = 1, 1000 do
      local arg = {}
      weak[arg] = true
      loop:call_later(100, print, arg):cancel()
    end
    collectgarbage()
    collectgarbage()
    local alive = 0
    for _ in pairs(weak) do alive = alive + 1 end
    assert.is_true(alive <= 65, alive .. " cancelled timers still held")
    loop:close()
  end)

  it("far in the future do not make the loop spin meanwhile", function()
    local _, fd, remove, path = util.fifo()
    local loop = lasync.new_event_loop()
    local far = loop:call_later(1e300, print)
    loop:add_reader(fd, loop.stop, loop)
    os.execute("(sleep 0.05; echo x > " .. path .. ") &")
    local cpu = os.clock()
    loop:run_forever()
    cpu = os.clock() - cpu
    assert.is_true(cpu < 0.03, ("the loop used %.3f s of CPU"):format(cpu))
    assert.is_false(far:cancelled())
    loop:close()
    remove()
  end)

  it("check their arguments", function()
    local loop = lasync.new_event_loop()
    util.raises({"bad argument #1 to 'call_later'", "number other than NaN expected"},
      function() loop:call_later(0 / 0, print) end)
    util.raises({"bad argument #1 to 'call_at'", "number other than NaN expected"},
      function() loop:call_at(0 / 0, print) end)
    util.raises({"bad argument #1 to 'call_later'", "number expected, got string"},
      function() loop:call_later("x", print) end)
    util.raises({"bad argument #2 to 'call_later'", "function expected, got nil"},
      function() loop:call_later(1, nil) end)
    util.raises({"bad argument #1 to 'call_at'", "number expected, got nil"},
      function() loop:call_at(nil, print) end)
    util.raises({"bad argument #2 to 'call_at'", "function expected, got table"},
      function() loop:call_at(1, {}) end)
    loop:close()
  end)
end)

describe("a callback that raises", function()
  it("is reported and the loop goes on", function()
    local reports, err = {}, {}
    local h
    local log = run_with(function(loop, log)
      loop:set_exception_handler(function(l, ctx)
        assert.are.equal(loop, l)
        reports[#reports + 1] = ctx
      end)
      h = loop:call_soon(function() error(err) end)
      loop:call_soon(function() log[#log + 1] = "next" end)
      loop:call_later(0, function() error("timer failed") end)
      loop:call_later(0.002, loop.stop, loop)
    end)
    assert.are.same({"next"}, log)
    assert.are.equal(2, #reports)
    assert.are.equal("Exception in callback", reports[1].message)
    assert.are.equal(err, reports[1].exception)
    assert.are.equal(h, reports[1].handle)
    assert.is_truthy(reports[1].traceback:find("stack traceback", 1, true))
    assert.is_truthy(reports[1].traceback:find("handle_spec.lua", 1, true))
    assert.is_truthy(reports[2].exception:find("timer failed", 1, true))
    assert.is_truthy(tostring(reports[2].handle):find("TimerHandle", 1, true))
  end)
end)
