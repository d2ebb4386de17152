-- The spec helper's own checks: a body that leaves something behind fails,
-- naming it; what it closes or cancels in time passes.
local lasync = require "lasync"
local helper = require "helper"
local util = require "core.util"

-- The error helper.run raises for body, which must fail.
local function failure(body, opts)
  return tostring(helper.error_of(helper.run, body, opts))
end

local function noop() end

describe("helper.run", function()
  it("fails a body that leaves a task pending", function()
    local f
    assert.matches("tasks left pending: <Task", failure(function()
      f = lasync.Future()
      lasync.spawn(f.await, f)
    end))
  end)

  it("fails a body that leaves a timer or a callback scheduled", function()
    assert.matches("handles left open: <TimerHandle when=[%d.]+> calling spec/helper_spec.lua:%d+",
      failure(function() lasync.get_running_loop():call_later(10, noop) end))
  end)

  it("fails a body that leaves an fd or a signal watched", function()
    local _, fd, close = util.fifo()
    local err = failure(function()
      local loop = lasync.get_running_loop()
      loop:add_reader(fd, noop)
      loop:add_signal_handler("SIGUSR1", noop)
    end)
    close()
    assert.matches("handles left open: <Handle> calling spec/helper_spec.lua:%d+, "
      .. "<Handle> calling spec/helper_spec.lua:%d+$", err)
  end)

  it("fails a body that leaves a server serving", function()
    local srv
    assert.matches("handles left open: <Handle> of <Server",
      failure(function() srv = lasync.start_server(noop, "127.0.0.1", 0) end))
    srv:close()
  end)

  it("fails a body that leaves a file descriptor open", function()
    local f
    assert.matches("file descriptors left open: %d+",
      failure(function() f = assert(io.open("/dev/null")) end))
    f:close()
  end)

  it("reports a body's own error first, and a deadline", function()
    assert.are.equal("boom", failure(function()
      lasync.get_running_loop():call_later(10, noop)
      error("boom", 0)
    end))
    assert.matches("test did not finish within " .. 0.01 * helper.SLOWDOWN .. " s",
      failure(function() lasync.sleep(100) end, {deadline = 0.01}))
  end)

  it("lets a body leave what it names a reason for", function()
    local f
    helper.run(function()
      lasync.get_running_loop():call_later(10, noop)
      f = assert(io.open("/dev/null"))
    end, {handles = "the check's own test", fds = "the check's own test"})
    f:close()
  end)

  it("passes a body that cleans up, dropped streams included", function()
    helper.run(function()
      local srv = lasync.start_server(noop, "127.0.0.1", 0)
      local _, port = srv:sockname()
      lasync.open_connection("127.0.0.1", port)  -- garbage at once: __gc closes it
      lasync.get_running_loop():call_later(10, noop):cancel()
      srv:close()
      srv:wait_closed()
    end)
  end)
end)

describe("helper.virtual", function()
  -- The error the function helper.virtual makes raises, which must fail.
  local function virtual_failure(body, opts)
    return tostring(helper.error_of(helper.virtual(body, opts)))
  end

  it("runs the body on virtual time", function()
    local slept
    helper.virtual(function()
      local t0 = lasync.time()
      lasync.sleep(3600)
      slept = lasync.time() - t0
    end)()
    assert.is_true(slept >= 3600)
  end)

  it("keeps the checks and the options of helper.run", function()
    assert.matches("tasks left pending: <Task", virtual_failure(function()
      local f = lasync.Future()
      lasync.spawn(f.await, f)
    end))
    -- a future nobody sets has no timer to jump to: the real deadline ends it
    assert.matches("test did not finish within " .. 0.01 * helper.SLOWDOWN .. " s", virtual_failure(function()
      lasync.Future():await()
    end, 0.01))
    local f
    helper.virtual(function() f = assert(io.open("/dev/null")) end, {fds = "the check's own test"})()
    f:close()
  end)
end)
