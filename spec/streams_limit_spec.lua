-- server:set_max_connections (src/server.c): beyond the limit, connections
-- wait in the listen backlog until a handler finishes.
local lasync = require "lasync"
local helper = require "helper"

-- A server whose handlers answer one line, then wait for `release`.
local function holding_server(release)
  local started = 0
  local server = lasync.start_server(function(reader, writer)
    started = started + 1
    writer:write(reader:readline())
    release:wait()
  end, "127.0.0.1", 0)
  return server, function() return started end
end

local function ask(port, text)
  local r, w = lasync.open_connection("127.0.0.1", port)
  w:write(text)
  return r, w
end

describe("server:set_max_connections", function()
  it("holds new connections in the backlog while n handlers run", helper.async(function()
    local release = lasync.Event()
    local server, started = holding_server(release)
    local _, port = server:sockname()
    server:set_max_connections(2)
    local r1, w1 = ask(port, "a\n")
    local r2, w2 = ask(port, "b\n")
    local r3, w3 = ask(port, "c\n")
    assert.equal("a\n", r1:readline())
    assert.equal("b\n", r2:readline())
    lasync.sleep(0.05)
    assert.equal(2, started())
    release:set()
    assert.equal("c\n", r3:readline())
    assert.equal(3, started())
    for _, w in ipairs {w1, w2, w3} do w:close() end
    server:close()
    server:wait_closed()
  end))

  it("nil lifts the limit and resumes accepting at once", helper.async(function()
    local release = lasync.Event()
    local server, started = holding_server(release)
    local _, port = server:sockname()
    server:set_max_connections(1)
    local r1, w1 = ask(port, "a\n")
    assert.equal("a\n", r1:readline())
    local r2, w2 = ask(port, "b\n")
    lasync.sleep(0.05)
    assert.equal(1, started())
    server:set_max_connections(nil)
    assert.equal("b\n", r2:readline())
    release:set()
    w1:close()
    w2:close()
    server:close()
    server:wait_closed()
  end))

  it("rejects a bad count", helper.async(function()
    local server = lasync.start_server(function() end, "127.0.0.1", 0)
    local err = helper.error_of(function() server:set_max_connections(-1) end)
    assert.truthy(tostring(err):find("bad argument #1 to 'set_max_connections' "
      .. "(count from 0 expected)", 1, true), tostring(err))
    err = helper.error_of(function() server:set_max_connections("x") end)
    assert.truthy(tostring(err):find("bad argument #1 to 'set_max_connections' "
      .. "(number expected, got string)", 1, true), tostring(err))
    server:close()
  end))
end)
