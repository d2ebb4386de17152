-- Timers fired up to one 4 ms tick of libevent's coarse clock late: 50
-- sleeps of 0.5 ms took about 200 ms. They must take about 25-40 ms; the
-- bound leaves room for a loaded machine and still catches the old tick.
local lasync = require "lasync"
local helper = require "helper"

describe("timer precision (regression)", function()
  it("a short sleep is not rounded up to a clock tick", helper.async(function()
    local t0 = lasync.time()
    for _ = 1, 50 do lasync.sleep(0.0005) end
    local took = lasync.time() - t0
    assert.is_true(took >= 0.025, ("took %.1f ms"):format(took * 1e3))
    assert.is_true(took < 0.12, ("took %.1f ms"):format(took * 1e3))
  end))
end)
