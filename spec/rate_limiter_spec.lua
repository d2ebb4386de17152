local lasync = require "lasync"
local ltest = require "lasync.test"
package.path = "examples/?.lua;" .. package.path
local bucket = require "rate_limiter"

describe("a token bucket of 10 calls a minute", function()
  it("lets 10 through at once, then one every 6 s", ltest.async(function()
    local limit, t0, times = bucket.new(10, 60), lasync.time(), {}
    for i = 1, 40 do
      limit:acquire()
      times[i] = lasync.time() - t0
    end
    assert.is_true(times[10] < 1)            -- the first 10: no wait
    assert.is_true(times[40] >= 180)         -- 30 more: 3 minutes
    assert.is_true(times[40] < 181)
  end, {virtual_time = true}))
end)
