-- docs/reference.md §1, §2, §4: exception handlers, debug mode, slow callbacks and
-- errors never retrieved.
local lasync = require "lasync"
local helper = require "helper"
local util = require "core.util"

-- Runs `code` (after `local lasync = require "lasync"`) in a child lua5.4;
-- returns its stderr.
local function stderr_of(code, env)
  local _, err, status = util.run_script('local lasync = require "lasync"\n' .. code, env)
  assert.are.equal(0, status, err)
  return err
end

local function busy(seconds)
  local t0 = os.clock()
  while os.clock() - t0 < seconds do end
end

describe("the exception handler", function()
  it("is the default (nil) until set; nil restores the default", function()
    local loop = lasync.new_event_loop()
    local function h() end
    assert.is_nil(loop:get_exception_handler())
    loop:set_exception_handler(h)
    assert.are.equal(h, loop:get_exception_handler())
    loop:set_exception_handler(nil)
    assert.is_nil(loop:get_exception_handler())
    local callable = setmetatable({}, {__call = h})
    loop:set_exception_handler(callable)
    assert.are.equal(callable, loop:get_exception_handler())
    loop:close()
  end)

  it("must be callable", function()
    local loop = lasync.new_event_loop()
    util.raises({"bad argument #1 to 'set_exception_handler'", "function expected, got number"},
      function() loop:set_exception_handler(3) end)
    util.raises({"bad argument #1 to 'set_exception_handler'", "function expected, got table"},
      function() loop:set_exception_handler({}) end)
    util.raises({"bad argument #1 to 'set_exception_handler'", "function expected, got no value"},
      function() loop:set_exception_handler() end)
    loop:close()
  end)

  it("gets the loop and the very context given to call_exception_handler", function()
    local loop, got = lasync.new_event_loop(), {}
    loop:set_exception_handler(function(l, ctx) got[#got + 1] = {l, ctx} end)
    local ctx = {message = "m", exception = {}}
    loop:call_exception_handler(ctx)
    assert.are.equal(1, #got)
    assert.are.equal(loop, got[1][1])
    assert.are.equal(ctx, got[1][2])
    loop:close()
  end)

  it("that raises is reported by the default handler; the loop goes on", function()
    local out, err, status = util.run_script([[
      local loop = require("lasync").new_event_loop()
      loop:set_exception_handler(function() error("handler broken") end)
      loop:call_soon(function() error("first") end)
      loop:call_soon(print, "still running")
      loop:call_soon(loop.stop, loop)
      loop:run_forever()
    ]])
    assert.are.equal(0, status)
    assert.are.equal("still running\n", out)
    assert.is_truthy(err:find("Unhandled error in exception handler", 1, true))
    assert.is_truthy(err:find("handler broken", 1, true))
  end)

  it("call_exception_handler and default_exception_handler check their argument", function()
    local loop = lasync.new_event_loop()
    util.raises({"bad argument #1 to 'call_exception_handler'", "table expected, got string"},
      function() loop:call_exception_handler("x") end)
    util.raises({"bad argument #1 to 'default_exception_handler'", "table expected, got no value"},
      function() loop:default_exception_handler() end)
    loop:close()
  end)
end)

describe("the default exception handler", function()
  it("prints the message and the fields on stderr", function()
    local err = stderr_of([[
      local loop = lasync.new_event_loop()
      loop:default_exception_handler {
        message = "something happened", exception = lasync.OSError("bad fd"),
        traceback = "stack traceback:\n\there",
      }
    ]])
    assert.is_truthy(err:find("something happened", 1, true))
    assert.is_truthy(err:find("exception: OSError: bad fd", 1, true))
    assert.is_truthy(err:find("stack traceback:\n\there", 1, true))
  end)

  it("is what call_exception_handler uses when no handler is set", function()
    local err = stderr_of([[
      local loop = lasync.new_event_loop()
      loop:call_exception_handler {message = "via call", exception = "E"}
    ]])
    assert.is_truthy(err:find("via call", 1, true))
    assert.is_truthy(err:find("exception: E", 1, true))
  end)

  it("reports a callback that raised, naming the handle", function()
    local err = stderr_of([[
      local loop = lasync.new_event_loop()
      loop:call_soon(function() error("callback broke") end)
      loop:call_soon(loop.stop, loop)
      loop:run_forever()
    ]])
    assert.is_truthy(err:find("Exception in callback", 1, true))
    assert.is_truthy(err:find("handle: <Handle>", 1, true))
    assert.is_truthy(err:find("callback broke", 1, true))
    assert.is_truthy(err:find("stack traceback", 1, true))
  end)
end)

describe("debug mode", function()
  it("is set and read with set_debug and get_debug", function()
    local loop = lasync.new_event_loop()
    loop:set_debug(true)
    assert.is_true(loop:get_debug())
    loop:set_debug(false)
    assert.is_false(loop:get_debug())
    loop:close()
  end)

  it("has a slow_callback_duration that reads and writes", function()
    local loop = lasync.new_event_loop()
    assert.are.equal(0.1, loop.slow_callback_duration)
    loop.slow_callback_duration = 0.25
    assert.are.equal(0.25, loop.slow_callback_duration)
    util.raises({"bad value for slow_callback_duration (number expected, got string)"},
      function() loop.slow_callback_duration = "fast" end)
    assert.are.equal(0.25, loop.slow_callback_duration)
    loop:close()
  end)

  it("reports a slow callback, naming the handle", function()
    local loop, reports = lasync.new_event_loop(), {}
    loop:set_debug(true)
    -- 50 ms: far above what a loaded machine's pauses (or a GC step) add
    -- to an empty callback
    loop.slow_callback_duration = 0.05
    loop:set_exception_handler(function(_, ctx) reports[#reports + 1] = ctx end)
    local h = loop:call_soon(busy, 0.1)
    loop:call_soon(function() end)  -- fast: not reported
    loop:call_soon(loop.stop, loop)
    loop:run_forever()
    loop:close()
    assert.are.equal(1, #reports)
    assert.is_truthy(reports[1].message:find("^Executing .* took [%d.]+ seconds$"))
    assert.are.equal(h, reports[1].handle)
  end)

  it("reports a slow task step, naming the task, with its traceback", helper.async(function()
    local loop = lasync.get_running_loop()
    local reports = helper.reports()
    loop:set_debug(true)
    loop.slow_callback_duration = 0.05
    local function hog()
      busy(0.1)
      lasync.sleep(0)
    end
    local t = lasync.spawn(hog)
    t:set_name("hog")
    t:await()
    loop:set_debug(false)
    local found
    for _, ctx in ipairs(reports) do
      if ctx.task == t then found = ctx end
    end
    assert.is_truthy(found)
    assert.is_truthy(found.message:find("hog", 1, true))
    assert.is_truthy(found.message:find("took", 1, true))
    assert.is_truthy(found.traceback:find("diagnostics_spec.lua", 1, true))
  end))

  it("reports nothing slow when off", function()
    local loop, reports = lasync.new_event_loop(), {}
    loop.slow_callback_duration = 0.001
    loop:set_exception_handler(function(_, ctx) reports[#reports + 1] = ctx end)
    loop:call_soon(busy, 0.005)
    loop:call_soon(loop.stop, loop)
    loop:run_forever()
    loop:close()
    assert.are.same({}, reports)
  end)

  it("gives futures never retrieved their creation traceback", function()
    local loop, reports = lasync.new_event_loop(), {}
    loop:set_debug(true)
    loop:set_exception_handler(function(_, ctx) reports[#reports + 1] = ctx end)
    local function make_failed()
      loop:create_future():set_exception("lost")
    end
    make_failed()
    collectgarbage()
    collectgarbage()
    loop:close()
    assert.are.equal(1, #reports)
    assert.are.equal("lost", reports[1].exception)
    assert.is_truthy(reports[1].traceback:find("make_failed", 1, true))
  end)
end)

describe("errors never retrieved", function()
  it("of a collected task are reported once, with its name and traceback", helper.async(function()
    local reports = helper.reports()
    local e = {}
    do
      local t = lasync.spawn(function() lasync.sleep(0) error(e) end)
      t:set_name("forgotten")
    end
    helper.settle()  -- its two steps
    for _ = 1, 3 do collectgarbage() end
    assert.are.equal(1, #reports)
    local ctx = reports[1]
    assert.are.equal("Task exception was never retrieved", ctx.message)
    assert.are.equal(e, ctx.exception)
    assert.are.equal("<Task 'forgotten' finished>", tostring(ctx.future))
    assert.is_truthy(ctx.traceback:find("diagnostics_spec.lua", 1, true))
  end))

  it("of a string error keep the message in the traceback", helper.async(function()
    local reports = helper.reports()
    lasync.spawn(function() error("plain failure") end)
    helper.settle()
    for _ = 1, 3 do collectgarbage() end
    assert.are.equal(1, #reports)
    assert.is_truthy(reports[1].exception:find("plain failure", 1, true))
    assert.is_truthy(reports[1].traceback:find("plain failure", 1, true))
  end))

  it("of a plain future are reported when it is collected", helper.async(function()
    local reports = helper.reports()
    lasync.Future():set_exception("dropped")
    for _ = 1, 3 do collectgarbage() end
    assert.are.equal(1, #reports)
    assert.are.equal("Future exception was never retrieved", reports[1].message)
    assert.are.equal("dropped", reports[1].exception)
  end))

  it("are reported when the loop closes, and not again later", function()
    local loop, reports = lasync.new_event_loop(), {}
    loop:set_exception_handler(function(_, ctx) reports[#reports + 1] = ctx end)
    local t = loop:create_task(function() error("kept but unread") end)
    loop:run_until_complete(function() lasync.sleep(0.001) end)
    assert.are.equal(0, #reports)
    loop:close()
    assert.are.equal(1, #reports)
    assert.are.equal(t, reports[1].future)
    t = nil  -- luacheck: ignore 311
    for _ = 1, 3 do collectgarbage() end
    assert.are.equal(1, #reports)
  end)

  it("are not reported once retrieved by await, result or exception", helper.async(function()
    local reports = helper.reports()
    local a = lasync.spawn(function() error("a") end)
    local b = lasync.spawn(function() error("b") end)
    local c = lasync.spawn(function() error("c") end)
    pcall(a.await, a)
    lasync.sleep(0)
    pcall(b.result, b)
    c:exception()
    a, b, c = nil, nil, nil  -- luacheck: ignore 311
    for _ = 1, 3 do collectgarbage() end
    assert.are.same({}, reports)
  end))

  it("are not reported for cancelled or successful tasks", helper.async(function()
    local reports = helper.reports()
    local t = lasync.spawn(function() lasync.sleep(10) end)
    lasync.spawn(function() return 1 end)
    lasync.sleep(0)
    t:cancel()
    lasync.sleep(0)
    t = nil  -- luacheck: ignore 311
    for _ = 1, 3 do collectgarbage() end
    assert.are.same({}, reports)
  end))
end)
