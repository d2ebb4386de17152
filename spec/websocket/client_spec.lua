-- lasync.http.websocket_connect (docs/reference.md §10) against a server
-- no one here wrote: Python's websockets library (spec/websocket/peer.py
-- server), over ws:// and wss://, started and stopped by its pid.
local helper = require "helper"
local util = require "http_util"
local http = require "lasync.http"
local core = require "lasync.core"

local HERE = debug.getinfo(1, "S").source:match("^@(.-)[^/]*$")
local TLS = HERE .. "../fixtures/tls/"

-- Starts peer.py's server (args: extra words).
local function start(scratch, name, args)
  return util.start_python(scratch, name, ("%s %s server"):format(util.PYTHON,
    util.quote(HERE .. "peer.py")), args)
end

describe("lasync.http.websocket_connect with Python's websockets as the server", function()
  local scratch, py, pys = helper.scratch(), nil, nil
  local base, tbase

  lazy_setup(function()
    py = start(scratch, "ws")
    pys = start(scratch, "wss", ("%s %s"):format(util.quote(TLS .. "server.pem"),
      util.quote(TLS .. "server.key")))
    base = ("ws://127.0.0.1:%d"):format(py.port)
    tbase = ("wss://localhost:%d"):format(pys.port)
  end)

  lazy_teardown(function()
    py.stop()
    pys.stop()
    scratch.cleanup()
  end)

  it("echoes text, binary and 1 MiB messages, gets its pong, closes 1000", helper.async(function()
    local ws = http.websocket_connect(base .. "/echo")
    ws:send("héllo")
    assert.are.same({"héllo", "text"}, {ws:receive()})
    ws:send("\0\255bin", "binary")
    assert.are.same({"\0\255bin", "binary"}, {ws:receive()})
    local big = ("b"):rep(1024 * 1024)
    local pong = ws:ping("ping from lasync")
    ws:send(big)
    local got = ws:receive()
    assert.is_true(got == big)
    assert.is_true(pong:done() and pong:result())
    ws:close()
    assert.are.same({nil, 1000, ""}, {ws:receive()})
    assert.is_true(ws._s:is_closing())
  end, {deadline = 20}))

  it("reassembles a fragmented message", helper.async(function()
    local ws = http.websocket_connect(base .. "/fragments")
    assert.are.same({"fragmented é", "text"}, {ws:receive()})
    ws:close()
  end, {deadline = 20}))

  it("answers the server's ping", helper.async(function()
    local ws = http.websocket_connect(base .. "/ping")
    assert.are.same({"pong came", "text"}, {ws:receive()})
    ws:close()
  end, {deadline = 20}))

  it("offers subprotocols and reports the one the server chose", helper.async(function()
    local ws = http.websocket_connect(base .. "/echo", {protocols = {"x", "b"}})
    assert.are.equal("b", ws.protocol)
    ws:close()
    ws = http.websocket_connect(base .. "/echo", {protocols = {"a"}})
    assert.are.equal("a", ws.protocol)
    ws:close()
    ws = http.websocket_connect(base .. "/echo")
    assert.is_nil(ws.protocol)
    ws:close()
  end, {deadline = 20}))

  it("returns the server's close code and reason, and answers the close", helper.async(function()
    local ws = http.websocket_connect(base .. "/close")
    assert.are.same({nil, 4000, "bye from python"}, {ws:receive()})
    assert.are.same({nil, 4000, "bye from python"}, {ws:receive()})
    local err = helper.error_of(ws.send, ws, "late")
    assert.is_true(core.ConnectionError:is(err))
    assert.matches("the WebSocket is closed %(4000%)", tostring(err))
  end, {deadline = 20}))

  it("closes with 1009 a message over its max_message_size", helper.async(function()
    local ws = http.websocket_connect(base .. "/big/2000", {max_message_size = 1000})
    assert.are.same({nil, 1009, "message over max_message_size"}, {ws:receive()})
  end, {deadline = 20}))

  it("connects over wss:// with the server's certificate verified", helper.async(function()
    local ws = http.websocket_connect(tbase .. "/echo", {ssl = {cafile = TLS .. "ca.pem"}})
    ws:send("over TLS")
    assert.are.same({"over TLS", "text"}, {ws:receive()})
    ws:close()
    local err = helper.error_of(http.websocket_connect, tbase .. "/echo")
    assert.is_true(core.SSLCertVerificationError:is(err))
  end, {deadline = 20}))

  it("raises HTTPError with the status when the server refuses", helper.async(function()
    local srv, port = util.serve(function() return 403, "no" end)
    local err = helper.error_of(http.websocket_connect, ("ws://127.0.0.1:%d/"):format(port))
    assert.is_true(core.HTTPError:is(err))
    assert.are.equal(403, err.status)
    util.stop(srv)
  end))

  it("checks its arguments", helper.async(function()
    assert.matches("bad argument #1 to 'websocket_connect' %(a ws:// or wss:// URL expected, got 'http://x/'%)",
      helper.error_of(http.websocket_connect, "http://x/"))
    assert.matches("opts.protocols must be a list of strings",
      helper.error_of(http.websocket_connect, base, {protocols = {"a b"}}))
    assert.matches("unknown option 'foo'", helper.error_of(http.websocket_connect, base, {foo = 1}))
  end))

  it("raises outside a task", function()
    assert.matches("websocket_connect called outside a task",
      helper.error_of(http.websocket_connect, "ws://127.0.0.1:1/"))
  end)
end)
