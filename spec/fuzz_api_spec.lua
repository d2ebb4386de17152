--- fuzz/api.lua (`make fuzz-api`): a few sequences run clean, and each
-- invariant check fails on a violation planted through its test hooks.
local lasync = require "lasync"
local fuzz = require "fuzz.api"

-- The violations of sequence idx of seed 1 with plant(st) in its main task.
local function planted(idx, plant, release)
  return table.concat(fuzz.run_program(fuzz.generate(1, idx),
                                       {plant = plant, release = release}), "\n")
end

describe("fuzz/api.lua", function()
  it("runs sequences without a violation", function()
    local steps = 0
    local i, _, v = fuzz.run(3, 20, 1, function() steps = steps + 1 end)
    assert.is_nil(i, v and table.concat(v, "\n"))
    assert.are.equal(20, steps)
  end)

  it("generates the same program from the same seed and index", function()
    assert.are.equal(fuzz.describe(fuzz.generate(7, 42)), fuzz.describe(fuzz.generate(7, 42)))
    assert.are_not.equal(fuzz.describe(fuzz.generate(7, 42)), fuzz.describe(fuzz.generate(7, 43)))
  end)

  it("tells expected errors from internal ones", function()
    assert.is_true(fuzz.expected(lasync.CancelledError("x")))
    assert.is_true(fuzz.expected(lasync.ConnectionResetError("x")))
    assert.is_false(fuzz.expected("attempt to index a nil value (local 'x')"))
    assert.is_false(fuzz.expected(lasync.TaskGroupError("x", {errors = {n = 1, "boom"}})))
  end)

  it("fails on a leaked descriptor", function()
    local f
    local v = planted(1, function() f = assert(io.open("/dev/null")) end)
    f:close()
    assert.matches("descriptors open", v)
  end)

  it("fails on a task that outlives its cancellation", function()
    local stop = false
    local v = planted(2, function(st)
      st.tasks[#st.tasks + 1] = lasync.spawn(function()
        while not stop do pcall(lasync.sleep, 0.01) end
      end)
    end, function() stop = true end)
    assert.matches("not finished after cancel", v)
  end)

  it("fails on a lock left held and a queue count that does not add up", function()
    local v = planted(3, function(st)
      st.lock._locked = true
      st.puts = st.puts + 1
    end)
    assert.matches("lock held by nobody", v)
    assert.matches("queue qsize", v)
  end)

  it("fails when Lua memory grows past its bound", function()
    local every, kept = fuzz.MEM_EVERY, {}
    fuzz.MEM_EVERY = 2
    local i, _, v = fuzz.run(1, 6, 1, nil, function()
      return {plant = function() kept[#kept + 1] = ("x"):rep(700 * 1024) .. #kept end}
    end)
    fuzz.MEM_EVERY = every
    assert.is_not_nil(i)
    assert.matches("Lua memory", v[1])
  end)
end)
