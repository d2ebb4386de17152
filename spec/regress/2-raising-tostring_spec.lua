-- An error value whose __tostring raises replaced the error it reported:
-- a callback's failure was reported as the __tostring error, and a task's
-- never retrieved failure, reported when the loop closed, escaped
-- loop:close() and lasync.run (found by fuzzing).
local lasync = require "lasync"
local util = require "core.util"

local bad = setmetatable({}, {__tostring = function() error("no text") end})

describe("an error whose __tostring raises (regression)", function()
  it("is reported as it is from a callback", function()
    local got
    lasync.run(function()
      local loop = lasync.get_running_loop()
      loop:set_exception_handler(function(_, ctx) got = ctx.exception end)
      loop:call_soon(error, bad)
      lasync.sleep(0)
    end)
    assert.are.equal(bad, got)
  end)

  it("does not escape lasync.run when the default handler prints it", function()
    local out, err, status = util.run_script([[
      local lasync = require "lasync"
      local bad = setmetatable({}, {__tostring = function() error("no text") end})
      print(lasync.run(function()
        lasync.spawn(error, bad)  -- never retrieved: reported at close
        lasync.sleep(0)
        return "ok"
      end))
    ]])
    assert.are.equal(0, status)
    assert.are.equal("ok\n", out)
    assert.matches("exception: %(table value whose __tostring failed%)", err)
  end)
end)
