-- RFC 6455 as lasync.http.websocket reads it, frame by frame from a raw
-- client (spec/ws_util.lua), and the ws methods between lasync's own
-- client and server: violations and their close codes, control frames
-- between fragments, backpressure, the closing handshake's corners and
-- the checks of arguments.
local helper = require "helper"
local util = require "http_util"
local wsutil = require "ws_util"
local lasync = require "lasync"
local http = require "lasync.http"
local core = require "lasync.core"

local frame, read_frame = wsutil.frame, wsutil.read_frame

local function code(n, reason) return string.pack(">I2", n) .. (reason or "") end

local echo_server = wsutil.echo_server

-- Sends raw bytes on a new connection to an echo server, then after its
-- answer (a frame) the bytes of then, if any: the rest of a refused
-- message and our close frame, which the server waits for. Returns the
-- frame and what its receive() returned.
local function violation(bytes, opts, after)
  local srv, port, seen = echo_server(opts)
  local r, w = wsutil.handshake(port, "/")
  w:write(bytes)
  local op, payload = read_frame(r)
  if after then w:write(after) end
  assert.are.equal("", r:read(-1))  -- then it closes
  w:close()
  util.stop(srv)
  return op, payload, seen[1]
end

describe("a WebSocket server reading frames", function()
  local cases = {
    {"reserved bits", frame(1 | 0x40, "x", true), 1002, "reserved bits set"},
    {"a reserved opcode", frame(3, "x", true), 1002, "reserved opcode"},
    {"a fragmented ping", frame(9, "x", true, false), 1002, "fragmented control frame"},
    {"a ping over 125 bytes", frame(9, ("x"):rep(126), true), 1002, "control frame over 125 bytes"},
    {"a close frame of 1 byte", frame(8, "x", true), 1002, "close frame of 1 byte"},
    {"close code 1005", frame(8, code(1005), true), 1002, "invalid close code"},
    {"close code 2000", frame(8, code(2000), true), 1002, "invalid close code"},
    {"a close reason not UTF-8", frame(8, code(1000, "\xff"), true), 1007, "close reason is not UTF-8"},
    {"a message inside a fragmented one",
      frame(1, "a", true, false) .. frame(1, "b", true), 1002, "new message inside a fragmented one"},
    {"text cut inside a character", frame(1, "\xe2\x82", true), 1007, "text message is not UTF-8",
      nil, frame(8, code(1007), true)},
    {"fragments over max_message_size together",
      frame(2, ("x"):rep(6), true, false) .. frame(0, ("y"):rep(6), true, false), 1009,
      "message over max_message_size", {max_message_size = 10},
      frame(0, ("z"):rep(300), true) .. frame(8, code(1009), true)},
    {"a frame over max_message_size still arriving",
      frame(2, ("x"):rep(100), true):sub(1, 50), 1009, "message over max_message_size",
      {max_message_size = 10}, frame(2, ("x"):rep(100), true):sub(51) .. frame(8, code(1009), true)},
    {"a 64-bit length with its top bit set", "\x82\xff\x80\0\0\0\0\0\0\0\1\2\3\4", 1002,
      "frame length over 2^63"},
  }
  for _, c in ipairs(cases) do
    it("closes with " .. c[3] .. " " .. c[1], helper.async(function()
      local op, payload, seen = violation(c[2], c[5], c[6])
      assert.are.same({8, code(c[3], c[4])}, {op, payload})
      assert.are.same({c[3], c[4]}, seen)
    end))
  end

  it("answers a ping between fragments and reassembles the message", helper.async(function()
    local srv, port = echo_server()
    local r, w = wsutil.handshake(port, "/")
    w:write(frame(1, "fra", true, false) .. frame(9, "between", true) .. frame(0, "gm", true, false)
      .. frame(10, "unasked pong", true) .. frame(0, "ent €", true))
    assert.are.same({10, "between"}, {read_frame(r)})
    assert.are.same({1, "fragment €"}, {read_frame(r)})
    w:write(frame(1, "again", true))  -- the parser is back at a message's start
    assert.are.same({1, "again"}, {read_frame(r)})
    w:write(frame(8, "", true))  -- no code: answered with none
    assert.are.same({8, ""}, {read_frame(r)})
    w:close()
    util.stop(srv)
  end))

  it("reads frames that arrive a byte at a time", helper.async(function()
    local srv, port = echo_server()
    local r, w = wsutil.handshake(port, "/")
    local bytes = frame(2, ("z"):rep(300), true, false) .. frame(0, "!", true)
    for i = 1, #bytes do
      w:write(bytes:sub(i, i))
      w:drain()
      lasync.sleep(0)
    end
    assert.are.same({2, ("z"):rep(300) .. "!"}, {read_frame(r)})
    w:close()
    util.stop(srv)
  end))

  it("returns 1006 when the peer goes without a close frame", helper.async(function()
    local srv, port, seen = echo_server()
    local _, w = wsutil.handshake(port, "/")
    w:write(frame(1, "hal", true, false))
    w:close()
    util.poll(function() return seen[1] end)
    assert.are.same({1006, "connection closed without a close frame"}, seen[1])
    util.stop(srv)
  end))
end)

describe("UTF-8 as WebSocket text", function()
  local valid = {"", "plain ascii, more than eight bytes", "é", "€", "𝄞", "\u{10FFFF}", "\u{D7FF}",
    "\u{E000}", ("a"):rep(15) .. "é"}
  local invalid = {"\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xed\xa0\x80", "\xed\xbf\xbf",
    "\xf0\x80\x80\x80", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xe2\x82", "\x80",
    "\xfe", ("a"):rep(9) .. "\xff", "é\xa9"}
  it("is taken when well formed", function()
    for _, s in ipairs(valid) do assert.is_true(core._ws.utf8_valid(s), s) end
  end)
  it("is refused when overlong, a surrogate, past U+10FFFF, cut or stray", function()
    for _, s in ipairs(invalid) do assert.is_false(core._ws.utf8_valid(s), s) end
  end)
end)

-- A lasync client connected to a lasync server whose handler is
-- handler(ws, req) for one connection; returns the client's ws, the
-- server and a future of the handler's result.
local function pair(handler, opts, copts)
  local done = lasync.Future()
  local srv, port = util.serve(function(req)
    done:set_result(handler(http.websocket(req, opts), req))
  end)
  local ws = http.websocket_connect(("ws://127.0.0.1:%d/"):format(port), copts)
  return ws, srv, done
end

describe("ws methods between lasync's client and server", function()
  it("suspends send() while the peer does not read: memory stays bounded", helper.async(function()
    local chunk, sent, stop = ("m"):rep(64 * 1024), 0, false
    local ws, srv, done = pair(function(sws)
      while not stop do
        sws:send(chunk, "binary")
        sent = sent + 1
      end
    end)
    lasync.sleep(0.3)
    local stalled = sent
    lasync.sleep(0.1)
    -- what the sockets hold and one high-water mark, far from 64 MiB
    assert.is_true(stalled < 200, "sent " .. stalled)
    assert.are.equal(stalled, sent)
    stop = true
    for _ = 1, sent + 1 do assert.are.equal(chunk, (ws:receive())) end
    ws:close()
    done:await()
    util.stop(srv)
  end))

  it("closes 1000 when the handler returns, 1011 when it raises", helper.async(function()
    local reports = helper.reports()
    local srv, port = util.serve(function(req)
      http.websocket(req)
      if req.path ~= "/" then error("handler failed") end
    end)
    local ws = http.websocket_connect(("ws://127.0.0.1:%d/"):format(port))
    assert.are.same({nil, 1000, ""}, {ws:receive()})
    ws = http.websocket_connect(("ws://127.0.0.1:%d/fail"):format(port))
    assert.are.same({nil, 1011, ""}, {ws:receive()})
    util.stop(srv)
    assert.are.equal(1, #reports)
    assert.matches("handler failed", tostring(reports[1].exception))
  end))

  it("sends close 1001 to open WebSockets when the server closes", helper.async(function()
    local ws, srv, done = pair(function(sws)
      return {sws:receive()}
    end)
    ws:send("hello")  -- consumed by the handler... not echoed
    srv:close()
    assert.are.same({nil, 1001, "server shutting down"}, {ws:receive()})
    srv:wait_closed()
    assert.are.same({"hello", "text"}, done:await())
  end))

  it("lets a task close while another receives: the receiver sees the answer", helper.async(function()
    local ws, srv = pair(function(sws)
      assert.are.same({nil, 4002, "from the client"}, {sws:receive()})
    end)
    local receiver = lasync.spawn(function() return {ws:receive()} end)
    lasync.sleep(0.01)
    ws:close(4002, "from the client")
    assert.are.same({nil, 4002, ""}, receiver:await())  -- the server's answer
    util.stop(srv)
  end))

  it("closes after close_timeout when the peer never answers the close", helper.async(function()
    local srv, port = util.serve(function(req)
      http.websocket(req)
      lasync.sleep(1)  -- reads nothing, so never answers
    end)
    local ws = http.websocket_connect(("ws://127.0.0.1:%d/"):format(port), {close_timeout = 0.05})
    local late = lasync.get_running_loop():call_later(0.5, function() error("waited too long") end)
    ws:close()
    late:cancel()
    assert.are.same({nil, 1006, "no close frame from the peer in time"}, {ws:receive()})
    util.stop(srv)
  end))

  it("lets the server close the TCP connection first, waiting at most close_timeout",
    helper.async(function()
      -- a raw server: it answers the close frame, then keeps the connection
      local hold = lasync.Event()
      local srv = lasync.start_server(function(r, w)
        local key = r:readuntil("\r\n\r\n"):match("Sec%-WebSocket%-Key: ([^\r]+)")
        w:write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          .. "Sec-WebSocket-Accept: " .. core._ws.accept_key(key) .. "\r\n\r\n")
        local head = r:readexactly(2)  -- the client's close frame, masked
        r:readexactly((head:byte(2) & 0x7F) + 4)
        w:write(frame(8, code(1000)))
        hold:wait()
        w:close()
      end, "127.0.0.1", 0)
      local _, port = srv:sockname()
      local loop = lasync.get_running_loop()
      local ws = http.websocket_connect(("ws://127.0.0.1:%d/"):format(port), {close_timeout = 0.2})
      local fired = false
      loop:call_later(0.1, function() fired = true end)
      ws:close()  -- the server's close frame came at once, its end of input not
      assert.is_true(fired)
      assert.are.same({nil, 1000, ""}, {ws:receive()})
      hold:set()
      util.stop(srv)
      -- and with a server that closes at once, no wait
      local ws2, srv2 = pair(function(sws) sws:receive() end, nil, {close_timeout = 5})
      local late = false
      local timer = loop:call_later(1, function() late = true end)
      ws2:close()
      assert.is_false(late)
      timer:cancel()
      util.stop(srv2)
    end))

  it("closes the connection when a close waiting for the peer is cancelled", helper.async(function()
    local srv, port = util.serve(function(req)
      http.websocket(req)
      lasync.sleep(0.2)  -- reads nothing, so never answers
    end)
    local ws = http.websocket_connect(("ws://127.0.0.1:%d/"):format(port), {close_timeout = 5})
    local closer = lasync.spawn(function() ws:close() end)
    lasync.sleep(0.01)
    closer:cancel()
    assert.is_true(core.CancelledError:is(helper.error_of(closer.await, closer)))
    assert.are.same({nil, 1006, "no close frame from the peer in time"}, {ws:receive()})
    assert.is_true(ws._s:is_closing())
    util.stop(srv)
  end))

  it("closes the connection when a client waiting for the server's end is cancelled",
    helper.async(function()
      local hold = lasync.Event()
      local srv = lasync.start_server(function(r, w)
        local key = r:readuntil("\r\n\r\n"):match("Sec%-WebSocket%-Key: ([^\r]+)")
        w:write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          .. "Sec-WebSocket-Accept: " .. core._ws.accept_key(key) .. "\r\n\r\n"
          .. frame(8, code(4000, "bye")))  -- closes, then keeps the connection
        hold:wait()
        w:close()
      end, "127.0.0.1", 0)
      local _, port = srv:sockname()
      local ws = http.websocket_connect(("ws://127.0.0.1:%d/"):format(port), {close_timeout = 5})
      local reader = lasync.spawn(function() return ws:receive() end)
      lasync.sleep(0.05)
      reader:cancel()
      assert.is_true(core.CancelledError:is(helper.error_of(reader.await, reader)))
      assert.are.same({nil, 4000, "bye"}, {ws:receive()})
      assert.is_true(ws._s:is_closing())
      hold:set()
      util.stop(srv)
    end))

  it("refuses a handshake response that is not one, with HTTPError", helper.async(function()
    local function accept_of(head) return core._ws.accept_key(head:match("Sec%-WebSocket%-Key: ([^\r]+)")) end
    local answers = {
      ["connection closed before the handshake's response"] = function() return nil end,
      ["bad WebSocket handshake response"] = function()
        return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          .. "Sec-WebSocket-Accept: bm90IHRoZSByaWdodCBvbmU=\r\n\r\n"
      end,
      ["the server chose a subprotocol not offered: other"] = function(head)
        return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          .. "Sec-WebSocket-Accept: " .. accept_of(head) .. "\r\nSec-WebSocket-Protocol: other\r\n\r\n"
      end,
    }
    for why, answer in pairs(answers) do
      local srv = lasync.start_server(function(r, w)
        local data = answer(r:readuntil("\r\n\r\n"))
        if data then w:write(data) end
        w:close()
      end, "127.0.0.1", 0)
      local _, port = srv:sockname()
      local err = helper.error_of(http.websocket_connect, ("ws://127.0.0.1:%d/"):format(port),
        {protocols = {"chat"}})
      assert.is_true(core.HTTPError:is(err), tostring(err))
      assert.are.equal(why, err.message)
      util.stop(srv)
    end
  end))

  it("resolves ping futures by their pong, in order", helper.async(function()
    local ws, srv = pair(function(sws) sws:receive() end)
    local p1, p2 = ws:ping("one"), ws:ping("two")
    ws:send("go")  -- the server answers both pings before it reads this
    lasync.sleep(0.05)
    local p3 = ws:ping("three")
    assert.are.same({nil, 1000, ""}, {ws:receive()})
    assert.is_true(p1:result() and p2:result())
    assert.is_true(core.ConnectionError:is(helper.error_of(p3.result, p3)))
    util.stop(srv)
  end))

  it("raises ConnectionError on send after close, returns the close again", helper.async(function()
    local ws, srv = pair(function(sws) sws:receive() end)
    ws:close(1000)
    assert.are.same({nil, 1000, ""}, {ws:receive()})
    assert.are.same({nil, 1000, ""}, {ws:receive()})
    local err = helper.error_of(ws.send, ws, "late")
    assert.is_true(core.ConnectionError:is(err))
    assert.is_true(core.ConnectionError:is(helper.error_of(ws.ping, ws)))
    ws:close()  -- again: nothing
    util.stop(srv)
  end))

  it("checks its arguments", helper.async(function()
    local ws, srv = pair(function(sws) sws:receive() end)
    assert.matches("bad argument #1 to 'send' %(string expected, got number%)", helper.error_of(ws.send, ws, 42))
    assert.matches("bad argument #2 to 'send' %(\"text\" or \"binary\" expected%)",
      helper.error_of(ws.send, ws, "x", "blob"))
    assert.matches("bad argument #1 to 'send' %(UTF%-8 text expected", helper.error_of(ws.send, ws, "\xff"))
    assert.matches("bad argument #1 to 'ping' %(string of at most 125 bytes expected",
      helper.error_of(ws.ping, ws, ("p"):rep(126)))
    assert.matches("bad argument #1 to 'close' %(close code", helper.error_of(ws.close, ws, 1005))
    assert.matches("bad argument #2 to 'close' %(UTF%-8 reason of at most 123 bytes expected",
      helper.error_of(ws.close, ws, 1000, ("r"):rep(124)))
    assert.matches("calling 'receive' on bad self", helper.error_of(ws.receive, {}))
    ws:close()
    util.stop(srv)
  end))

  it("checks websocket()'s use", helper.async(function()
    local errs = {}
    local srv, port = util.serve(function(req)
      errs[#errs + 1] = helper.error_of(http.websocket, req, {protocols = "chat"})
      if req.path == "/ws" then
        http.websocket(req)
        errs[#errs + 1] = helper.error_of(req.write, req, "x")
        return
      end
      req:start_response(200)
      errs[#errs + 1] = helper.error_of(http.websocket, req)
      req:finish()
    end)
    local _, w, head = wsutil.handshake(port, "/")
    util.poll(function() return #errs == 2 end)
    assert.matches("opts.protocols must be a list of strings", errs[1])
    assert.matches("websocket: the response has already started", errs[2])
    assert.matches("^HTTP/1.1 200 OK\r\n", head)
    w:close()
    _, w, head = wsutil.handshake(port, "/ws")
    util.poll(function() return #errs == 4 end)
    assert.matches("write: the connection is a WebSocket now", errs[4])
    assert.matches("^HTTP/1.1 101 ", head)
    w:close()
    util.stop(srv)
  end))
end)
