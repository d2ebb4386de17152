-- Timers fired up to one 4 ms tick of libevent's coarse clock late: every
-- sleep of 0.5 ms took about 4 ms. Told by ordering, not by measuring:
-- twenty 0.5 ms sleeps one after the other (10 ms, 80 ms with the bug) end
-- before a 30 ms timer. Load can only delay the sleeps, so the spec passes
-- when one of five tries does; with the bug none can.
local lasync = require "lasync"
local helper = require "helper"

-- Does a chain of n sleeps of d seconds end before a timer of `within`?
local function chain_first(n, d, within)
  local timer_fired = false
  local h = lasync.get_running_loop():call_later(within, function() timer_fired = true end)
  for _ = 1, n do lasync.sleep(d) end
  h:cancel()
  return not timer_fired
end

describe("timer precision (regression)", function()
  it("a short sleep is not rounded up to a clock tick", helper.async(function()
    local won = false
    for _ = 1, 5 do
      won = chain_first(20, 0.0005, 0.03)
      if won then break end
    end
    assert.is_true(won, "twenty 0.5 ms sleeps never ended before a 30 ms timer")
  end))
end)
