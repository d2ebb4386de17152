-- docs/reference.md §4 (a pending task is kept alive by its loop) and the C objects'
-- ownership: abandoned futures, tasks, handles and their cycles are all
-- collected.
local lasync = require "lasync"
local helper = require "helper"

local function full_gc()
  for _ = 1, 3 do collectgarbage() end
  return collectgarbage("count")
end

-- One round of abandoned objects (10 futures, tasks and handles), some
-- in cycles, some never resolved; returns a task that ends the round.
local function abandon_some(loop, i)
  lasync.Future()                                   -- pending forever
  lasync.Future():set_result({i})                   -- done, never read
  local cb = lasync.Future()                        -- cycle f -> cb -> f
  cb:add_done_callback(function() return cb end)
  local f = lasync.Future()                         -- f <-> waiter
  local waiter = lasync.spawn(function() return f:await() end)
  f:add_done_callback(function() return waiter end)
  if i % 2 == 0 then f:set_result(i) end            -- half never resolved
  local e = lasync.Future()
  e:set_exception({})
  e:exception()                                     -- failed, read
  loop:call_later(100, function() return i end):cancel()
  local a, b                                        -- tasks awaiting each
  a = lasync.spawn(function() lasync.sleep(0) return b:await() end)
  b = lasync.spawn(function() lasync.sleep(0) return a:await() end)
  return lasync.spawn(function() return i end)      -- done, unreferenced
end

describe("memory", function()
  it("returns to its baseline after 100,000 abandoned objects", function()
    local base = full_gc()
    lasync.run(function()
      local loop = lasync.get_running_loop()
      for i = 1, 10000 do
        local last = abandon_some(loop, i)
        if i % 1000 == 0 then last:await() end
      end
      lasync.sleep(0)
    end)  -- cancels the tasks still waiting
    local after = full_gc()
    assert.is_true(after - base < math.max(base * 0.1, 300),
      ("%.0f KB before, %.0f KB after"):format(base, after))
  end)

  it("returns to its baseline after many loops are made and dropped", function()
    local base = full_gc()
    for _ = 1, 200 do
      local loop = lasync.new_event_loop()
      loop:call_soon(function() end)
      loop:call_later(10, function() end)
      loop:create_task(function() end)
      loop:create_future():set_result(1)
    end
    for _ = 1, 50 do
      local loop = lasync.new_event_loop()
      loop:run_until_complete(function() lasync.sleep(0) end)
      loop:close()
    end
    local after = full_gc()
    assert.is_true(after - base < math.max(base * 0.1, 300),
      ("%.0f KB before, %.0f KB after"):format(base, after))
  end)
end)

describe("spawned tasks without references", function()
  it("all complete, collections or not", helper.async(function()
    local done = 0
    for _ = 1, 1000 do
      lasync.spawn(function()
        lasync.sleep(0.001)
        done = done + 1
      end)
    end
    collectgarbage()
    lasync.sleep(0)
    collectgarbage()
    lasync.sleep(0.01)
    while done < 1000 do lasync.sleep(0.001) end
    assert.are.equal(1000, done)
  end))
end)
