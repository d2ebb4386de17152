-- Reads take their bytes straight from the socket when nothing is
-- buffered: a read cancelled while it waits must leave the stream usable,
-- and bytes that arrive afterwards reach the next read, none lost.
local lasync = require "lasync"
local helper = require "helper"

describe("a read cancelled before data came (regression)", function()
  it("leaves the bytes for the next read", helper.async(function()
    local peer = lasync.Future()
    local srv = lasync.start_server(function(r, w)
      peer:set_result(w)
      r:read(-1)
    end, "127.0.0.1", 0)
    local _, port = srv:sockname()
    local r, w = lasync.open_connection("127.0.0.1", port)
    local sw = peer:await()
    local ok, err = pcall(lasync.timeout, 0.02, r.read, r, 100)
    assert.is_false(ok)
    assert.is_true(lasync.TimeoutError:is(err))
    sw:write("after the cancel\n")
    assert.are.equal("after the cancel\n", r:readline())
    sw:write(("x"):rep(200000))
    assert.are.equal(200000, #r:readexactly(200000))
    w:close()
    sw:close()
    srv:close()
    srv:wait_closed()
  end))
end)
