-- docs/reference.md §1: lasync.run, get_running_loop, new_event_loop, time, debug env.
local lasync = require "lasync"
local helper = require "helper"
local util = require "core.util"

describe("lasync.run", function()
  it("returns every result of the main task, nils included", function()
    local r = table.pack(lasync.run(function() return 1, nil, "x", nil end))
    assert.are.equal(4, r.n)
    assert.are.same({1, nil, "x", nil, n = 4}, r)
  end)

  it("passes its extra arguments, nils included, to the function", function()
    local r = table.pack(lasync.run(function(...)
      return select("#", ...), ...
    end, nil, 2, nil))
    assert.are.same({3, nil, 2, nil, n = 4}, r)
  end)

  it("returns nothing for a function that returns nothing", function()
    assert.are.equal(0, select("#", lasync.run(function() end)))
  end)

  it("runs the function as a task of a running loop", function()
    local loop, task, running = lasync.run(function()
      local l = lasync.get_running_loop()
      return l, lasync.current_task(), l:is_running()
    end)
    assert.is_true(running)
    assert.is_true(lasync.is_task(task))
    assert.is_true(task:done())
    assert.is_true(loop:is_closed())
    assert.is_false(loop:is_running())
  end)

  it("raises the main task's error value itself", function()
    local e = {}
    assert.are.equal(e, util.error_of(lasync.run, function() error(e) end))
    assert.are.equal("plain", util.error_of(lasync.run, function()
      lasync.sleep(0)
      error("plain", 0)
    end))
  end)

  it("raises an error raised after awaiting", function()
    local e = lasync.TimeoutError("late")
    assert.are.equal(e, util.error_of(lasync.run, function()
      lasync.sleep(0.001)
      error(e)
    end))
  end)

  it("closes the loop even when the main task fails", function()
    local loop
    util.error_of(lasync.run, function()
      loop = lasync.get_running_loop()
      error("boom")
    end)
    assert.is_true(loop:is_closed())
  end)

  it("raises CancelledError when the main task is cancelled", function()
    local err = util.error_of(lasync.run, function()
      lasync.current_task():cancel("self")
      lasync.sleep(1)
    end)
    assert.is_true(lasync.CancelledError:is(err))
    assert.are.equal("self", err.message)
  end)

  it("cancels leftover tasks at the end and lets their cleanup run", function()
    local closed, caught, t = false, nil, nil
    lasync.run(function()
      t = lasync.spawn(function()
        local _ <close> = setmetatable({}, {__close = function() closed = true end})
        local ok, e = pcall(lasync.sleep, 10)
        caught = not ok and e
        error(e, 0)
      end)
      lasync.sleep(0)
    end)
    assert.is_true(closed)
    assert.is_true(lasync.CancelledError:is(caught))
    assert.is_true(t:cancelled())
  end)

  it("cancels a leftover task that never started: it never runs", function()
    local ran, t = false, nil
    lasync.run(function()
      t = lasync.spawn(function() ran = true end)
    end)
    assert.is_false(ran)
    assert.is_true(t:cancelled())
  end)

  it("lets a leftover task finish its own cleanup awaits", function()
    local steps = {}
    lasync.run(function()
      lasync.spawn(function()
        local ok = pcall(lasync.sleep, 10)
        steps[#steps + 1] = ok
        lasync.sleep(0.001)
        steps[#steps + 1] = "cleaned"
      end)
      lasync.sleep(0)
    end)
    assert.are.same({false, "cleaned"}, steps)
  end)

  it("reports a leftover task that fails while being cancelled", function()
    local reports, boom = {}, {}
    lasync.run(function()
      lasync.get_running_loop():set_exception_handler(function(_, ctx)
        reports[#reports + 1] = ctx
      end)
      lasync.spawn(function()
        pcall(lasync.sleep, 10)
        error(boom)
      end)
      lasync.sleep(0)
    end)
    assert.are.equal(1, #reports)
    assert.is_truthy(reports[1].message:find("shutdown", 1, true))
    assert.are.equal(boom, reports[1].exception)
    assert.is_true(lasync.is_task(reports[1].task))
  end)

  it("cannot be called while a loop is running", helper.async(function()
    util.raises({"cannot be called while an event loop is running"},
      lasync.run, function() end)
  end))

  it("checks that its argument is callable", function()
    util.raises({"bad argument #1 to 'run'", "function expected, got number"},
      lasync.run, 42)
    local callable = setmetatable({}, {__call = function(_, x) return x end})
    assert.are.equal(7, lasync.run(callable, 7))
  end)

  it("can run again after a previous run", function()
    assert.are.equal(1, lasync.run(function() return 1 end))
    assert.are.equal(2, lasync.run(function() return 2 end))
  end)

  it("leaves no running loop behind", function()
    lasync.run(function() end)
    util.raises({"no running event loop"}, lasync.get_running_loop)
    util.raises({"no running event loop"}, lasync.time)
  end)

  -- The child signals itself through io.popen: os.execute (system(3))
  -- ignores SIGINT in the caller while the command runs.
  local SIGINT_SELF = [[
      local lasync = require "lasync"
      local f = assert(io.open("/proc/self/stat"))
      local pid = f:read("n")
      f:close()
      local function interrupt() io.popen("kill -INT " .. pid):close() end
  ]]

  it("cancels the main task on SIGINT", function()
    local out, _, status = util.run_script(SIGINT_SELF .. [[
      local ok, err = pcall(lasync.run, function()
        lasync.spawn(function()
          local _ <close> = setmetatable({}, {__close = function()
            print("child closed")
          end})
          lasync.sleep(10)
        end)
        lasync.sleep(0.001)
        interrupt()
        lasync.sleep(5)
        print("not interrupted")
      end)
      print(ok, lasync.CancelledError:is(err), tostring(err))
    ]])
    assert.are.equal(0, status)
    assert.are.equal("child closed\nfalse\ttrue\tCancelledError: interrupted\n", out)
  end)

  it("stops on a second SIGINT when the main task ignored the first", function()
    local out, _, status = util.run_script(SIGINT_SELF .. [[
      local ok, err = pcall(lasync.run, function()
        interrupt()
        print("ignored", pcall(lasync.sleep, 5))
        interrupt()
        print("ignored", pcall(lasync.sleep, 5))  -- the shutdown's cancel
      end)
      print(ok, tostring(err))
    ]])
    assert.are.equal(0, status)
    assert.are.equal("ignored\tfalse\tCancelledError: interrupted\n" ..
                     "ignored\tfalse\tCancelledError\n" ..
                     "false\tCancelledError: interrupted\n", out)
  end)

  it("exits the interpreter with the CancelledError on SIGINT", function()
    local _, err, status = util.run_script(SIGINT_SELF .. [[
      lasync.run(function()
        interrupt()
        lasync.sleep(5)
      end)
    ]])
    assert.are.equal(1, status)
    assert.is_truthy(err:find("CancelledError: interrupted", 1, true))
  end)
end)

describe("lasync.get_running_loop", function()
  it("returns the running loop inside a task", helper.async(function()
    local loop = lasync.get_running_loop()
    assert.is_true(loop:is_running())
    assert.are.equal(loop, lasync.current_task():get_loop())
  end))

  it("raises outside a loop", function()
    util.raises({"no running event loop"}, lasync.get_running_loop)
  end)
end)

describe("lasync.new_event_loop", function()
  it("returns a new loop that is not running", function()
    local a, b = lasync.new_event_loop(), lasync.new_event_loop()
    assert.are_not.equal(a, b)
    assert.is_false(a:is_running())
    assert.is_false(a:is_closed())
    assert.is_truthy(tostring(a):find("idle", 1, true))
    a:close()
    b:close()
    assert.is_truthy(tostring(a):find("closed", 1, true))
  end)

  it("is not in debug mode unless LASYNC_DEBUG=1", function()
    local out = util.run_script([[
      local lasync = require "lasync"
      print(lasync.new_event_loop():get_debug())
    ]], {LASYNC_DEBUG = "0"})
    assert.are.equal("false\n", out)
  end)

  it("is in debug mode when LASYNC_DEBUG=1", function()
    local out = util.run_script([[
      local lasync = require "lasync"
      print(lasync.new_event_loop():get_debug())
      print(lasync.run(function() return lasync.get_running_loop():get_debug() end))
    ]], {LASYNC_DEBUG = "1"})
    assert.are.equal("true\ntrue\n", out)
  end)
end)

describe("lasync.time", function()
  it("is the running loop's monotonic clock", helper.async(function()
    local loop = lasync.get_running_loop()
    local t1 = lasync.time()
    assert.are.equal("float", math.type(t1))
    local earlier = helper.after(0.009)
    lasync.sleep(0.01)
    assert.is_true(earlier:is_set())
    local t2, t3 = loop:time(), lasync.time()
    assert.is_true(t1 < t2 and t2 <= t3 and t3 <= loop:time())  -- one clock
  end))
end)

describe("the lasync.core module", function()
  it("is the same module when required again after package.loaded is cleared", function()
    local saved = {}
    for name, mod in pairs(package.loaded) do
      if name:match("^lasync") then saved[name] = mod; package.loaded[name] = nil end
    end
    local again = require "lasync"
    for name, mod in pairs(saved) do package.loaded[name] = mod end
    assert.are_not.equal(lasync, again)
    assert.are.equal(lasync.CancelledError, again.CancelledError)
    -- objects and functions of both copies work together
    assert.are.equal("v", again.run(function()
      local f = lasync.Future()
      again.get_running_loop():call_soon(f.set_result, f, "v")
      return again.await(f)
    end))
  end)
end)
