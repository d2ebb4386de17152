-- The two ways a task waits (src/task.c, "waiting" in src/lasync.h): it
-- awaits a Future, kept with the task until the future wakes it, or it
-- parks, and a cancellation takes it off what would wake it at once.
local lasync = require "lasync"
local core = require "lasync.core"
local helper = require "helper"
local util = require "streams_util"

local CancelledError = lasync.CancelledError
local settle = helper.settle

describe("an await", function()
  it("lets go of its future once woken: a later park gets no stale value",
     helper.async(function()
    local f = lasync.Future()
    local first = lasync.spawn(f.await, f)  -- f's first awaiter
    local t = lasync.spawn(function()
      f:await()  -- the second: f keeps it in its callbacks
      return {core._park(core.current_task())}
    end)
    settle()
    f:set_result("v")
    settle()
    core._unpark(t)  -- no value
    assert.are.same({true}, t:await())
    first:await()
  end))

  it("from a driven coroutine is cancelled through its future", helper.async(function()
    local f = lasync.Future()
    local co = require "lasync.coroutine"
    local t = lasync.spawn(function()
      return co.wrap(function() return f:await() end)()
    end)
    settle()
    t:cancel("why")
    settle()
    assert.is_true(f:cancelled())
    assert.is_true(t:cancelled())
  end))
end)

describe("a park cancelled", function()
  it("leaves a stream's read at once: another task may read before it ran",
     helper.async(function()
    local r, w, done = util.pair()
    local reader = lasync.spawn(r.read, r, 10)
    settle()
    reader:cancel()
    lasync.spawn(w.write, w, "data")
    assert.are.equal("data", r:read(10))  -- before the cancelled one ran
    assert.is_true(CancelledError:is(helper.error_of(reader.await, reader)))
    done()
  end))

  it("leaves a stream's drain at once: the next drain() waits in its place",
     helper.async(function()
    local client, server, done = util.pair()
    local _ = server
    client:write(("x"):rep(16 * 1024 * 1024))  -- more than the sockets take
    local first = lasync.spawn(client.drain, client)
    settle()
    first:cancel()
    local second = lasync.spawn(client.drain, client)
    settle()
    assert.is_false(second:done())  -- waits, as the writer now
    assert.is_true(first:cancelled())
    second:cancel()
    settle()
    done()
    util.wait_dropped(client)  -- closed with output its peer never read
  end))
end)
