-- Timers fired up to one 4 ms tick of libevent's coarse clock late: every
-- sleep of 0.5 ms took about 4 ms. Load delays some sleeps, not most, so
-- the 10th shortest of 50 must stay well under a tick.
local lasync = require "lasync"
local helper = require "helper"

describe("timer precision (regression)", function()
  it("a short sleep is not rounded up to a clock tick", helper.async(function()
    local took = {}
    for i = 1, 50 do
      local t0 = lasync.time()
      lasync.sleep(0.0005)
      took[i] = lasync.time() - t0
    end
    table.sort(took)
    assert.is_true(took[1] >= 0.0005, ("shortest %.2f ms"):format(took[1] * 1e3))
    assert.is_true(took[10] < 0.002, ("10th shortest %.2f ms"):format(took[10] * 1e3))
  end))
end)
