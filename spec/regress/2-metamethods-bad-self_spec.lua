-- Metamethods took their argument for granted: getmetatable(x).__tostring
-- (or __len, __gc) called on another kind of value read it as their own
-- kind, a NULL dereference or a heap overflow (found by fuzzing).
local lasync = require "lasync"
local core = require "lasync.core"
local helper = require "helper"

describe("metamethods called by hand (regression)", function()
  it("refuse a value of another kind with an error", helper.async(function()
    local loop = lasync.get_running_loop()
    local server = lasync.start_server(function() end, "127.0.0.1", 0)
    local _, port = server:sockname()
    local stream = lasync.open_connection("127.0.0.1", port)
    local objects = {
      loop = loop, future = lasync.Future(), task = lasync.current_task(),
      handle = loop:call_soon(function() end), timer = loop:call_later(1, print),
      stream = stream, server = server, context = lasync.ssl_context {},
      waitlist = core._WaitList(), event = lasync.Event(), queue = lasync.Queue(),
    }
    local others = table.pack(nil, 1, "x", {}, lasync.Queue(), core._WaitList(), lasync.Event())
    local function kind_of(v) return (getmetatable(v) or {}).__name end
    for kind, obj in pairs(objects) do
      local mt = getmetatable(obj)
      for _, name in ipairs {"__tostring", "__len", "__gc"} do
        for i = 1, others.n do
          local other = others[i]
          if mt[name] and kind_of(other) ~= mt.__name then
            local ok, err = pcall(mt[name], other)
            assert.is_false(ok, kind .. " " .. name)
            assert.matches("expected", tostring(err), 1, kind .. " " .. name)
          end
        end
      end
    end
    objects.timer:cancel()
    stream:close()
    server:close()
  end))

  it("refuse __gc by hand on the running loop", helper.async(function()
    local loop = lasync.get_running_loop()
    assert.is_false(pcall(getmetatable(loop).__gc, loop))
    assert.is_true(loop:is_running())
  end))

  it("let a stream closed by its __gc wake its reader", helper.async(function()
    local server = lasync.start_server(function(r) r:read() end, "127.0.0.1", 0)
    local _, port = server:sockname()
    local r = lasync.open_connection("127.0.0.1", port)
    local reader = lasync.spawn(r.read, r)
    lasync.sleep(0)
    getmetatable(r).__gc(r)
    assert.are.equal("", reader:await())
    assert.is_true(r:is_closing())
    r:write("dropped")
    server:close()
    server:wait_closed()
  end))
end)
