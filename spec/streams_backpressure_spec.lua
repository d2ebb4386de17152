-- Backpressure (docs/reference.md §8): a peer writing 64 MiB to a handler that never
-- reads, and a handler writing 64 MiB to a peer that never reads (with
-- drain), both cost bounded memory in this process, which runs both ends.
local lasync = require "lasync"
local helper = require "helper"
local util = require "streams_util"

local TOTAL = 64 * 1024 * 1024
local BOUND = 16 * 1024 * 1024
local CHUNK = ("b"):rep(1024 * 1024)

-- Writes CHUNK to w with drain until TOTAL bytes or `seconds` passed;
-- returns the bytes written.
local function pump(w, seconds)
  local sent = 0
  pcall(lasync.timeout, seconds, function()
    while sent < TOTAL do
      w:write(CHUNK)
      sent = sent + #CHUNK
      w:drain()
    end
  end)
  return sent
end

local function settled_rss()
  collectgarbage()
  collectgarbage()
  return util.rss()
end

describe("backpressure", function()
  it("bounds the memory of a handler that never reads", helper.async(function()
    local stop = lasync.Event()
    local srv, port = util.server(function() stop:wait() end)
    local _, w = lasync.open_connection("127.0.0.1", port)
    local before = settled_rss()
    local sent = pump(w, 0.3)
    local grown = settled_rss() - before
    stop:set()
    w:close()
    util.stop(srv)
    util.wait_dropped(w)
    assert.is_true(sent < TOTAL, "the peer could send everything")
    assert.is_true(grown < BOUND, ("memory grew by %d bytes"):format(grown))
  end))

  it("bounds the memory of a handler writing to a peer that never reads", helper.async(function()
    local sent, writer = lasync.Future(), nil
    local srv, port = util.server(function(_, w)
      writer = w
      sent:set_result(pump(w, 0.3))
    end)
    local before = settled_rss()
    local r = lasync.open_connection("127.0.0.1", port, {limit = 1024})
    local n = sent:await()
    local grown = settled_rss() - before
    r:close()
    util.stop(srv)
    util.wait_dropped(writer)
    assert.is_true(n < TOTAL, "the handler could send everything")
    assert.is_true(grown < BOUND, ("memory grew by %d bytes"):format(grown))
  end))

  it("resumes reading once the reader takes the buffered input", helper.async(function()
    local got = lasync.Future()
    local srv, port = util.server(function(r)
      lasync.sleep(0.05)  -- the peer fills the buffer and the socket
      local n = 0
      while true do
        local data = r:read(65536)
        if data == "" then break end
        n = n + #data
      end
      got:set_result(n)
    end, {limit = 4096})
    local _, w = lasync.open_connection("127.0.0.1", port)
    for _ = 1, 16 do
      w:write(CHUNK)
      w:drain()
    end
    w:write_eof()
    assert.are.equal(16 * #CHUNK, got:await())
    w:close()
    util.stop(srv)
  end))
end)
