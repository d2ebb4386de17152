-- A reader removed while its handle was queued to run (its fd was ready in
-- the same poll) stayed anchored by the loop until the loop closed, with
-- its callback and everything the callback holds.
local lasync = require "lasync"
local util = require "core.util"

describe("a watch removed while queued (regression)", function()
  it("is let go of once the loop pops it", function()
    local loop = lasync.new_event_loop()
    local fa, fda, done_a = util.fifo()
    local fb, fdb, done_b = util.fifo()
    local held = setmetatable({}, {__mode = "v"})
    local function watch(fd, other)
      local payload = {}
      held[#held + 1] = payload
      loop:add_reader(fd, function()
        local _ = payload
        loop:remove_reader(fd)
        loop:remove_reader(other)  -- queued too: both fds were ready
      end)
    end
    watch(fda, fdb)
    watch(fdb, fda)
    fa:write("x\n"); fa:flush()
    fb:write("x\n"); fb:flush()
    loop:run_until_complete(function() for _ = 1, 3 do lasync.sleep(0.001) end end)
    collectgarbage()
    collectgarbage()
    local alive = 0
    for _ in pairs(held) do alive = alive + 1 end
    loop:close()
    done_a(); done_b()
    assert.are.equal(0, alive)
  end)
end)
