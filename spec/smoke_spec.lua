local lasync = require "lasync"
local helper = require "helper"

describe("lasync smoke", function()
  it("runs a task that sleeps and returns", helper.async(function()
    assert.are.equal(3, lasync.sleep(0.001, 3))
  end))
end)
