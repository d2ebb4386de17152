-- examples/ws_chat.lua, served in the spec's loop: its page, its
-- broadcast, and the bounded queue that drops a browser too slow to read
-- (1008) while the others get every message. make test-browser runs it in
-- real browsers (spec/browser/chat.py).
local helper = require "helper"
local util = require "http_util"
local lasync = require "lasync"
local http = require "lasync.http"

local HERE = debug.getinfo(1, "S").source:match("^@(.-)[^/]*$")
local EXAMPLE = HERE .. "../../examples/ws_chat.lua"

local function chat_server()
  local app = dofile(EXAMPLE)
  return util.serve(app.handler)
end

describe("examples/ws_chat.lua", function()
  it("serves its page and 404 elsewhere", helper.async(function()
    local srv, port = chat_server()
    local res = http.get(util.url(port, "/"))
    assert.are.equal(200, res.status)
    assert.matches("^text/html", res.headers["content-type"])
    assert.matches("new WebSocket%(", res.body)
    assert.are.equal(404, http.get(util.url(port, "/nothing")).status)
    util.stop(srv)
  end))

  it("sends each message to every browser, and drops one too slow with 1008", helper.async(function()
    local srv, port = chat_server()
    local url = ("ws://127.0.0.1:%d/chat"):format(port)
    local a = http.websocket_connect(url)
    local b = http.websocket_connect(url)
    local slow = http.websocket_connect(url)  -- never reads until the end
    local N, line = 20000, ("m"):rep(900)
    local got_a, got_b = {}, {}
    local function reader(ws, got)
      repeat
        local text = ws:receive()
        if text and text:find(line, 1, true) then got[#got + 1] = text:match("^guest1: (%d+)") end
      until text == nil or #got == N
    end
    local ra, rb = lasync.spawn(reader, a, got_a), lasync.spawn(reader, b, got_b)
    -- the readers must stay within the chat's 100 messages of the sender,
    -- or they are dropped too: a loaded machine may starve them otherwise
    for i = 1, N do
      a:send(i .. line)
      while math.min(#got_a, #got_b) < i - 50 and not (ra:done() or rb:done()) do
        lasync.sleep(0.001)
      end
    end
    ra:await()
    rb:await()
    assert.are.equal(N, #got_b)
    for i = 1, N do assert.are.equal(tostring(i), got_b[i]) end
    assert.are.equal(N, #got_a)
    local messages, text, code, reason = 0
    repeat
      text, code, reason = slow:receive()
      messages = messages + 1
    until text == nil
    assert.are.equal(1008, code)
    assert.are.equal("too slow: more than 100 messages behind", reason)
    assert.is_true(messages < N, "the slow one was dropped before the end")
    a:close()
    b:close()
    util.stop(srv)
  end, {deadline = 30}))
end)
