-- lasync.http.websocket (docs/reference.md §10) against a client no one
-- here wrote: Python's websockets library (spec/websocket/peer.py), run as
-- a subprocess while the server runs in the spec's loop.
local helper = require "helper"
local util = require "http_util"
local wsutil = require "ws_util"
local cjson = require "cjson"

local HERE = debug.getinfo(1, "S").source:match("^@(.-)[^/]*$")

-- The peer's client scenario against port: what it printed, decoded.
local function peer(port, scenario)
  local out, err, code = util.run {util.PYTHON, HERE .. "peer.py", "client", port, scenario}
  assert(code == 0, err)
  return cjson.decode(out)
end

-- A server whose /echo echoes and /close closes with 4001; seen[path]
-- gets what its receive() returned last.
local function server(opts)
  return wsutil.echo_server(opts or {protocols = {"chat", "echo"}}, {["/close"] = function(ws, req, seen)
    ws:close(4001, "bye from lasync")
    seen[req.path] = {ws:receive()}
  end})
end

describe("lasync.http.websocket with Python's websockets as the client", function()
  it("echoes text, binary, 1 MiB and fragmented messages, answers a ping, closes 1000",
    helper.async(function()
      local srv, port, seen = server()
      local got = peer(port, "echo")
      assert.are.equal("héllo", got.text)
      assert.are.same({0, 255, 98, 105, 110}, got.binary)
      assert.is_true(got.big)
      assert.are.equal("fragmented é", got.fragments)
      assert.is_true(got.pong)
      assert.are.same({1000, ""}, {got.code, got.reason})
      util.poll(function() return seen["/echo"] end)
      assert.are.same({1000, ""}, seen["/echo"])
      util.stop(srv)
    end, {deadline = 20}))

  it("agrees on the client's first subprotocol it serves, or none", helper.async(function()
    local srv, port = server()
    local got = peer(port, "subprotocol")
    assert.are.equal("echo", got.chosen)
    assert.are.equal(cjson.null, got.none)
    util.stop(srv)
  end, {deadline = 20}))

  it("closes with 1009 a message over max_message_size", helper.async(function()
    local srv, port, seen = server()
    local got = peer(port, "too_big")
    assert.are.equal(1009, got.code)
    assert.are.equal(1009, seen["/echo"][1])
    util.stop(srv)
  end, {deadline = 20}))

  it("closes with 1007 a text message that is not UTF-8", helper.async(function()
    local srv, port, seen = server()
    local got = peer(port, "bad_utf8")
    assert.are.equal(1007, got.code)
    assert.are.same({1007, "text message is not UTF-8"}, seen["/echo"])
    util.stop(srv)
  end, {deadline = 20}))

  it("closes with 1002 a continuation frame with no message", helper.async(function()
    local srv, port, seen = server()
    local got = peer(port, "stray_continuation")
    assert.are.equal(1002, got.code)
    assert.are.same({1002, "continuation with no message"}, seen["/echo"])
    util.stop(srv)
  end, {deadline = 20}))

  it("closes with the code and reason the handler gives", helper.async(function()
    local srv, port, seen = server()
    local got = peer(port, "server_closes")
    assert.are.same({4001, "bye from lasync"}, {got.code, got.reason})
    assert.are.same({nil, 4001, "bye from lasync"}, seen["/close"])
    util.stop(srv)
  end, {deadline = 20}))

  it("answers 400 to a request that is not a WebSocket handshake", helper.async(function()
    local srv, port = server()
    assert.are.equal(400, peer(port, "not_websocket").status)
    util.stop(srv)
  end, {deadline = 20}))
end)

describe("lasync.http.websocket with a raw client", function()
  it("closes with 1002 an unmasked client frame", helper.async(function()
    local srv, port, seen = server()
    local r, w = wsutil.handshake(port, "/echo")
    w:write(wsutil.frame(1, "not masked"))
    assert.are.same({8, string.pack(">I2", 1002) .. "unmasked frame from a client"}, {wsutil.read_frame(r)})
    assert.are.equal("", r:read(-1))
    assert.are.same({1002, "unmasked frame from a client"}, seen["/echo"])
    w:close()
    util.stop(srv)
  end))

  it("answers 400, or 426 naming version 13, to a bad handshake", helper.async(function()
    local srv, port = server()
    local base = "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade, close\r\n"
    local key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    local res = util.responses(util.raw(port, base .. key .. "Sec-WebSocket-Version: 8\r\n\r\n"))
    assert.are.same({426, "13"}, {res[1].status, res[1].headers["sec-websocket-version"]})
    res = util.responses(util.raw(port, base .. "Sec-WebSocket-Version: 13\r\n\r\n"))
    assert.are.equal(400, res[1].status)
    res = util.responses(util.raw(port, "POST /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
      .. "Connection: Upgrade, close\r\n" .. key .. "Sec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n"))
    assert.are.equal(400, res[1].status)
    util.stop(srv)
  end))

  it("answers the RFC's example key with its accept value", helper.async(function()
    local srv, port = server()
    local r, w, head = wsutil.handshake(port, "/echo", "dGhlIHNhbXBsZSBub25jZQ==")
    assert.matches("\r\nSec%-WebSocket%-Accept: s3pPLMBiTxaQ9kYGzzhZRbK%+xOo=\r\n", head)
    assert.matches("^HTTP/1.1 101 Switching Protocols\r\n", head)
    assert.is_nil(head:lower():find("content-length", 1, true))
    w:write(wsutil.frame(8, string.pack(">I2", 1000), true))
    assert.are.same({8, string.pack(">I2", 1000)}, {wsutil.read_frame(r)})
    w:close()
    util.stop(srv)
  end))
end)
