-- core._http (src/http.c): the HTTP/1.1 parser over a stream's input,
-- Messages and Headers, body framing and serialisation.
local lasync = require "lasync"
local core = require "lasync.core"
local helper = require "helper"
local util = require "streams_util"

local H = core._http
local MAX = 16384

-- Runs fn(client, server) on a connected pair, then closes both.
local function paired(fn)
  return helper.async(function()
    local client, server, done = util.pair()
    fn(client, server)
    done()
  end)
end

-- The head of a request: request line and header lines, CRLF-terminated.
local function head(line, ...)
  return table.concat({line, ...}, "\r\n") .. "\r\n\r\n"
end

-- The HTTPError reading raw (then EOF) as a request raises.
local function request_error(raw)
  local client, server, done = util.pair()
  client:write(raw)
  client:write_eof()
  local err = helper.error_of(H.read_request, server, MAX)
  done()
  assert.is_true(lasync.HTTPError:is(err), tostring(err))
  return err
end

-- Everything the client receives until the server's end closes.
local function received(client, server)
  server:close()
  return client:read()
end

-- message: a pattern its message must match when the check is src/http.c's
-- own, also made by http_parser (status alone would not tell them apart).
local function rejects(status, raw, why, message)
  it(why .. " → " .. status, helper.async(function()
    local err = request_error(raw)
    assert.equal(status, err.status)
    if message then assert.matches(message, err.message) end
  end))
end

describe("core._http.read_request", function()
  it("parses a request head", paired(function(client, server)
    client:write(head("GET /a/b?x=1&y HTTP/1.1", "Host: h", "X-Two: 1",
                      "x-two: 2 ", "Accept:  */*"))
    local req = H.read_request(server, MAX)
    assert.equal("GET", req.method)
    assert.equal("/a/b", req.path)
    assert.equal("x=1&y", req.query)
    assert.equal("1.1", req.version)
    assert.is_true(req.keep_alive)
    assert.is_false(req.chunked)
    assert.is_nil(req.body_length)
    assert.is_false(req.expect_continue)
    assert.is_nil(req.upgrade)
    local h = req.headers
    assert.equal(h, req.headers)
    assert.equal("h", h.host)
    assert.equal("h", h:get("HOST"))
    assert.equal("1, 2", h["X-Two"])
    assert.same({"1", "2"}, h:get_all("x-two"))
    assert.same({}, h:get_all("nope"))
    assert.equal("*/*", h.accept)
    assert.is_nil(h.nope)
    local seen = {}
    for k, v in pairs(h) do seen[#seen + 1] = k .. "=" .. v end
    assert.same({"host=h", "x-two=1, 2", "accept=*/*"}, seen)
  end))

  it("gives \"\" as the query when there is none", paired(function(client, server)
    client:write(head("GET / HTTP/1.0"))
    local req = H.read_request(server, MAX)
    assert.equal("/", req.path)
    assert.equal("", req.query)
    assert.equal("1.0", req.version)
    assert.is_false(req.keep_alive)
  end))

  it("reads keep_alive, expect_continue, upgrade, body_length", paired(function(client, server)
    client:write(head("POST / HTTP/1.0", "Connection: keep-alive",
                      "Content-Length: 12", "Expect: 100-continue",
                      "Upgrade: websocket"))
    local req = H.read_request(server, MAX)
    assert.is_true(req.keep_alive)
    assert.equal(12, req.body_length)
    assert.is_true(req.expect_continue)
    assert.equal("websocket", req.upgrade)
    client:write(head("GET / HTTP/1.1", "Host: h", "Connection: close"))
    assert.is_false(H.read_request(server, MAX).keep_alive)
  end))

  it("reads pipelined heads one by one, skipping empty lines", paired(function(client, server)
    client:write("\r\n" .. head("GET /1 HTTP/1.1", "Host: a") .. "\r\n\r\n"
                 .. head("GET /2 HTTP/1.1", "Host: b"))
    assert.equal("/1", H.read_request(server, MAX).path)
    local req = H.read_request(server, MAX)
    assert.equal("/2", req.path)
    assert.equal("b", req.headers.host)
  end))

  it("waits for a head sent in pieces", paired(function(client, server)
    local t = lasync.spawn(function() return H.read_request(server, MAX) end)
    util.trickle(client, {"GET /slow HT", "TP/1.1\r\nHo", "st: x\r", "\n\r\n"})
    assert.equal("/slow", t:await().path)
  end))

  it("returns nil at EOF before a request", paired(function(client, server)
    client:write("\r\n")
    client:write_eof()
    assert.is_nil(H.read_request(server, MAX))
  end))

  it("can be cancelled while it waits", paired(function(client, server)
    local t = lasync.spawn(H.read_request, server, MAX)
    lasync.sleep(0.01)
    t:cancel()
    assert.is_true(helper.is_cancelled(helper.error_of(t.await, t)))
    client:write(head("GET /after HTTP/1.1", "Host: x"))
    assert.equal("/after", H.read_request(server, MAX).path)
  end))

  it("keeps fields set from Lua and looks methods up", paired(function(client, server)
    H.set_methods({hello = function(self) return "hi " .. self.method end})
    client:write(head("GET / HTTP/1.1", "Host: x"))
    local req = H.read_request(server, MAX)
    assert.equal("", req.body)  -- a request without a body has it from the start
    req.body = "b"
    req.peer = {host = "h"}
    assert.equal("b", req.body)
    assert.equal("h", req.peer.host)
    assert.equal("hi GET", req:hello())
    H.set_methods({})
  end))

  it("marks EOF in the middle of a head as incomplete", helper.async(function()
    local err = request_error("GET / HTTP/1.1\r\nHost: x\r\n")
    assert.equal(400, err.status)
    assert.is_true(err.incomplete)
  end))

  it("answers 431 past max_headers_size", helper.async(function()
    local client, server, done = util.pair()
    client:write("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " .. ("a"):rep(200))
    local err = helper.error_of(H.read_request, server, 100)
    assert.equal(431, err.status)
    done()
  end))

  it("answers 431 for a whole head over the limit", helper.async(function()
    local client, server, done = util.pair()
    client:write(head("GET / HTTP/1.1", "Host: x", "X: " .. ("a"):rep(100)))
    assert.equal(431, helper.error_of(H.read_request, server, 100).status)
    done()
  end))

  rejects(400, "GET / HTTP/1.1\nHost: x\r\n\r\n", "a bare LF")
  rejects(400, head("GET / HTTP/1.1", "Host: x", "X: a\0b"), "a NUL", "NUL in head")
  rejects(400, "GET /\0 HTTP/1.1\r\nHost: x\r\n\r\n", "a NUL in the target", "NUL in head")
  rejects(400, head("GET / HTTP/1.1", "Host: x", "X: a", " b"), "an obsolete line folding")
  rejects(400, head("GET / HTTP/1.1", "Host: x", "Bad Name: v"), "a field name not a token")
  rejects(400, head("GET / HTTP/1.1", "Host : x"), "a space before the colon")
  rejects(400, head("GET / HTTP/1.1", "Host: x", "NoColon"), "a line without a colon")
  rejects(400, head("GET / HTTP/1.0", "Host: x", "Host: y"), "two Hosts in HTTP/1.0")
  rejects(400, head("POST / HTTP/1.1", "Host: x", "Content-Length: 3",
                    "Transfer-Encoding: chunked"), "Content-Length with Transfer-Encoding")
  rejects(400, head("POST / HTTP/1.1", "Host: x", "Transfer-Encoding: chunked",
                    "Content-Length: 3"), "Transfer-Encoding, then Content-Length")
  rejects(400, head("POST / HTTP/1.1", "Host: x", "Content-Length: 3",
                    "Content-Length: 4"), "differing Content-Lengths")
  rejects(400, head("POST / HTTP/1.1", "Host: x", "Content-Length: 3",
                    "Content-Length: 3"), "a repeated Content-Length")
  rejects(400, head("POST / HTTP/1.1", "Host: x", "Content-Length: 3, 3"),
          "a Content-Length list")
  rejects(400, head("POST / HTTP/1.1", "Host: x", "Content-Length: x"),
          "a non-numeric Content-Length")
  rejects(400, head("POST / HTTP/1.1", "Host: x", "Content-Length: +3"),
          "a signed Content-Length")
  rejects(400, head("POST / HTTP/1.1", "Host: x", "Content-Length:"),
          "an empty Content-Length")
  rejects(400, head("GET / HTTP/1.1"), "a missing Host")
  rejects(400, head("GET / HTTP/1.1", "Host: a", "Host: b"), "two Hosts")
  rejects(400, head("POST / HTTP/1.0", "Transfer-Encoding: chunked"),
          "Transfer-Encoding in HTTP/1.0")
  rejects(400, head("GET / HTTP/1.1 extra", "Host: x"), "a bad request line")
  rejects(501, head("POST / HTTP/1.1", "Host: x", "Transfer-Encoding: gzip"),
          "an unknown transfer coding")
  rejects(501, head("POST / HTTP/1.1", "Host: x", "Transfer-Encoding: gzip, chunked"),
          "a coding before chunked")
  rejects(505, head("GET / HTTP/2.0", "Host: x"), "HTTP/2.0")

  it("sees a folding whose LF and space come in two reads", paired(function(client, server)
    local t = lasync.spawn(helper.error_of, H.read_request, server, MAX)
    util.trickle(client, {"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n", " b\r\n\r\n"})
    local err = t:await()
    assert.equal(400, err.status)
    assert.matches("folding", err.message)
  end))

  it("names the problem in its message", helper.async(function()
    local err = request_error("GET / HTTP/1.1\nHost: x\r\n\r\n")
    assert.matches("bare LF", err.message)
  end))

  it("checks its arguments", paired(function(_, server)
    assert.matches("stream", helper.error_of(H.read_request, {}, MAX))
    assert.matches("max_headers_size", helper.error_of(H.read_request, server, 0))
  end))
end)

describe("core._http.read_body", function()
  local function request(client, server, raw)
    client:write(raw)
    return H.read_request(server, MAX)
  end

  it("reads a Content-Length body, then the next request", paired(function(client, server)
    local req = request(client, server, head("POST / HTTP/1.1", "Host: x",
      "Content-Length: 5") .. "hello" .. head("GET /n HTTP/1.1", "Host: x"))
    assert.equal("hello", H.read_body(server, req, 100))
    assert.equal("", H.read_body(server, req, 100))
    assert.equal("/n", H.read_request(server, MAX).path)
  end))

  it("gives \"\" for a request without a body", paired(function(client, server)
    local req = request(client, server, head("GET / HTTP/1.1", "Host: x"))
    assert.equal("", H.read_body(server, req, 100))
  end))

  it("waits for a body sent in pieces", paired(function(client, server)
    local req = request(client, server, head("PUT / HTTP/1.1", "Host: x",
                                             "Content-Length: 6"))
    local t = lasync.spawn(H.read_body, server, req, 100)
    util.trickle(client, {"ab", "cd", "ef"})
    assert.equal("abcdef", t:await())
  end))

  it("reads up to n bytes at a time", paired(function(client, server)
    local req = request(client, server, head("PUT / HTTP/1.1", "Host: x",
                                             "Content-Length: 5") .. "hello")
    assert.equal("hel", H.read_body(server, req, nil, 3))
    assert.equal("lo", H.read_body(server, req, nil, 3))
    assert.equal("", H.read_body(server, req, nil, 3))
  end))

  it("raises 413 before reading an announced body over max", paired(function(client, server)
    local req = request(client, server, head("PUT / HTTP/1.1", "Host: x",
                                             "Content-Length: 101"))
    assert.equal(413, helper.error_of(H.read_body, server, req, 100).status)
  end))

  it("raises 400 incomplete when the input ends in a body", paired(function(client, server)
    local req = request(client, server, head("PUT / HTTP/1.1", "Host: x",
                                             "Content-Length: 10") .. "abc")
    client:write_eof()
    local err = helper.error_of(H.read_body, server, req, 100)
    assert.equal(400, err.status)
    assert.is_true(err.incomplete)
  end))

  local chunked = head("POST / HTTP/1.1", "Host: x", "Transfer-Encoding: chunked")

  it("decodes a chunked body with extensions and trailers", paired(function(client, server)
    local req = request(client, server, chunked .. "5;a=b\r\nhello\r\n"
      .. "1 ; x\r\n \r\nA\r\n0123456789\r\n0\r\nT: 1\r\nU: 2\r\n\r\n"
      .. head("GET /n HTTP/1.1", "Host: x"))
    assert.is_true(req.chunked)
    assert.equal("hello 0123456789", H.read_body(server, req, 100))
    assert.equal("/n", H.read_request(server, MAX).path)
  end))

  it("decodes chunks sent byte by byte", paired(function(client, server)
    local req = request(client, server, chunked)
    local t = lasync.spawn(H.read_body, server, req, 100)
    local body = "3\r\nabc\r\n2;e\r\nde\r\n0\r\n\r\n"
    local pieces = {}
    for i = 1, #body do pieces[i] = body:sub(i, i) end
    util.trickle(client, pieces, 0.001)
    assert.equal("abcde", t:await())
  end))

  it("reads a chunked body n bytes at a time", paired(function(client, server)
    local req = request(client, server, chunked .. "5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n")
    local got = {}
    repeat
      local piece = H.read_body(server, req, nil, 4)
      got[#got + 1] = piece
    until piece == ""
    assert.equal("helloabc", table.concat(got))
    for i = 1, #got - 1 do assert.is_true(#got[i] <= 4) end
  end))

  it("raises 413 once a chunked body passes max", paired(function(client, server)
    local req = request(client, server, chunked .. "8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n")
    assert.equal(413, helper.error_of(H.read_body, server, req, 10).status)
  end))

  -- Each but the last is a whole body that a decoder without the check
  -- would take (then "" or "hello"), so only the check makes it fail;
  -- message: a pattern for the error's message.
  local function bad_chunked(raw, why, message)
    it("raises 400 on " .. why, paired(function(client, server)
      local req = request(client, server, chunked .. raw)
      client:write_eof()
      local err = helper.error_of(H.read_body, server, req, 100)
      assert.equal(400, err.status, tostring(err))
      if message then assert.matches(message, err.message) end
    end))
  end
  bad_chunked("x\r\n", "a bad chunk size")
  bad_chunked(";a\r\n\r\n", "a size line without a size", "bad chunk size")
  bad_chunked("5x\r\nhello\r\n0\r\n\r\n", "junk after a chunk size", "bad chunk size")
  bad_chunked("5\nhello\r\n0\r\n\r\n", "a bare LF in a size line")
  bad_chunked("5;a\nhello\r\n0\r\n\r\n", "a bare LF after an extension", "bare LF")
  bad_chunked("5;a\rb\r\nhello\r\n0\r\n\r\n", "a CR in an extension", "extension")
  bad_chunked("5;a\0b\r\nhello\r\n0\r\n\r\n", "a NUL in an extension", "extension")
  bad_chunked("5\r\nhelloX\r\n0\r\n\r\n", "data not followed by CRLF")
  bad_chunked("5\r\nhelloXY0\r\n\r\n", "data followed by two other bytes", "CRLF")
  bad_chunked("10000000000000000\r\n", "a size too large")
  bad_chunked("10000000000000005\r\nhello\r\n0\r\n\r\n", "a size that wraps to 5",
              "too large")
  bad_chunked("5;" .. ("e"):rep(5000) .. "\r\nhello\r\n0\r\n\r\n",
              "a size line over 4 KiB", "too long")
  bad_chunked("0\r\nT: 1\n\r\n", "a bare LF in a trailer")
  bad_chunked("0\r\nT: a\rb\r\n\r\n", "a CR in a trailer", "trailer")
  bad_chunked("0\r\nT: a\0b\r\n\r\n", "a NUL in a trailer", "trailer")
  bad_chunked("0\r\n" .. ("T: " .. ("t"):rep(4000) .. "\r\n"):rep(5) .. "\r\n",
              "a trailer section over 16 KiB", "trailer section too large")
  bad_chunked("5\r\nhel", "a body cut short")

  it("takes trailer lines up to 16 KiB in all", paired(function(client, server)
    local req = request(client, server, chunked .. "2\r\nok\r\n0\r\n"
      .. ("T: " .. ("t"):rep(4000) .. "\r\n"):rep(4) .. "\r\n")
    assert.equal("ok", H.read_body(server, req, 100))
  end))
end)

describe("core._http.next_request", function()
  local conn = {}

  it("reads the next request, with req.conn, req.peer and req.body", paired(function(client, server)
    client:write(head("GET /p HTTP/1.1", "Host: x"))
    local req = H.next_request(server, MAX, 5, {stream = server})
    assert.equal("/p", req.path)
    assert.equal(server, req.conn.stream)
    assert.equal("127.0.0.1", req.peer.host)
    assert.equal(req.peer, req.conn.peer)  -- made once, kept by the connection
    assert.equal("", req.body)
  end))

  it("gives a request with a body no req.body until it is read", paired(function(client, server)
    client:write(head("POST / HTTP/1.1", "Host: x", "Content-Length: 2") .. "ab")
    local req = H.next_request(server, MAX, 5, conn)
    assert.is_nil(req.body)
    assert.equal("ab", H.read_body(server, req, 10, nil, 5))
  end))

  it("ends quietly when nothing comes within the timeout", paired(function(_, server)
    local early = lasync.spawn(lasync.sleep, 0.01)  -- before the timeout
    assert.is_nil(H.next_request(server, MAX, 0.05, conn))
    assert.is_true(early:done())
  end))

  it("returns false, 408 when a head begun is not whole in time", paired(function(client, server)
    client:write("GET / HTTP/1.1\r\nHo")
    local req, status = H.next_request(server, MAX, 0.05, conn)
    assert.is_false(req)
    assert.equal(408, status)
  end))

  it("keeps the deadline while input trickles in", paired(function(client, server)
    local dripper = lasync.spawn(function()
      for _ = 1, 20 do
        client:write("X")
        lasync.sleep(0.02)
      end
    end)
    local req, status = H.next_request(server, MAX, 0.1, conn)
    assert.is_false(req)
    assert.equal(408, status)
    assert.is_false(dripper:done())  -- not kept open by the drip
    dripper:cancel()
  end))

  it("returns false and the status for a bad head, nil at EOF or a reset", paired(function(client, server)
    client:write("GET / HTTP/1.1\r\n\r\n")  -- no Host
    assert.same({false, 400}, {H.next_request(server, MAX, 5, conn)})
    client:close()
    assert.is_nil(H.next_request(server, MAX, 5, conn))
  end))

  it("rejects bad arguments", paired(function(_, server)
    assert.matches("timeout", helper.error_of(H.next_request, server, MAX, 0, conn))
    assert.matches("table", helper.error_of(H.next_request, server, MAX, 1, nil))
  end))
end)

describe("core._http.read_body with a timeout", function()
  it("returns false when the body does not come in time", paired(function(client, server)
    client:write(head("POST / HTTP/1.1", "Host: x", "Content-Length: 5") .. "ab")
    local req = H.read_request(server, MAX)
    assert.is_false(H.read_body(server, req, 10, nil, 0.05))
  end))

  it("rejects a timeout that is not positive", paired(function(client, server)
    client:write(head("POST / HTTP/1.1", "Host: x", "Content-Length: 5") .. "ab")
    local req = H.read_request(server, MAX)
    assert.matches("timeout must be positive", helper.error_of(H.read_body, server, req, 10, nil, 0))
  end))
end)

describe("core._http.write_response", function()
  local function exchange(client, server, raw, ...)
    client:write(raw)
    local req = H.read_request(server, MAX)
    local keep = H.write_response(server, req, ...)
    return keep, received(client, server)
  end

  it("writes status, Date, the headers, Content-Length and the body", paired(function(client, server)
    local keep, out = exchange(client, server, head("GET / HTTP/1.1", "Host: x"),
                               200, {["X-A"] = "1", ["X-List"] = {"a", "b"}}, "hello")
    assert.is_true(keep)
    assert.matches("^HTTP/1.1 200 OK\r\n", out)
    assert.matches("\r\nDate: %a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT\r\n", out)
    assert.matches("\r\nX%-A: 1\r\n", out)
    assert.matches("\r\nX%-List: a\r\nX%-List: b\r\n", out)
    assert.matches("\r\nContent%-Length: 5\r\n", out)
    assert.is_nil(out:find("Connection"))
    assert.matches("\r\n\r\nhello$", out)
  end))

  it("keeps the handler's Content-Length and Date", paired(function(client, server)
    local _, out = exchange(client, server, head("GET / HTTP/1.1", "Host: x"),
                            200, {["content-length"] = "5", Date = "d"}, "hello")
    local _, n = out:gsub("[Cc]ontent%-[Ll]ength", "")
    assert.equal(1, n)
    assert.matches("\r\nDate: d\r\n", out)
  end))

  it("writes no body for HEAD", paired(function(client, server)
    local _, out = exchange(client, server, head("HEAD / HTTP/1.1", "Host: x"),
                            200, nil, "hello")
    assert.matches("Content%-Length: 5\r\n\r\n$", out)
  end))

  it("says Connection: close when the connection ends", paired(function(client, server)
    local keep, out = exchange(client, server, head("GET / HTTP/1.0"), 404)
    assert.is_false(keep)
    assert.matches("^HTTP/1.1 404 Not Found\r\n", out)
    assert.matches("\r\nConnection: close\r\n", out)
    assert.matches("\r\nContent%-Length: 0\r\n", out)
  end))

  it("honours the handler's Connection: close", paired(function(client, server)
    local keep, out = exchange(client, server, head("GET / HTTP/1.1", "Host: x"),
                               200, {Connection = "close"}, "")
    assert.is_false(keep)
    local _, n = out:gsub("Connection", "")
    assert.equal(1, n)
  end))

  it("says Connection: keep-alive to a kept-alive HTTP/1.0 client", paired(function(client, server)
    local keep, out = exchange(client, server,
      head("GET / HTTP/1.0", "Connection: keep-alive"), 200, nil, "x")
    assert.is_true(keep)
    assert.matches("\r\nConnection: keep%-alive\r\n", out)
  end))

  it("answers without a request (a malformed one), closing", paired(function(client, server)
    assert.is_false(H.write_response(server, nil, 400, nil, "bad"))
    local out = received(client, server)
    assert.matches("^HTTP/1.1 400 Bad Request\r\n", out)
    assert.matches("\r\nConnection: close\r\n", out)
  end))

  it("raises on CR, LF or NUL in a header, writing nothing", paired(function(client, server)
    client:write(head("GET / HTTP/1.1", "Host: x"))
    local req = H.read_request(server, MAX)
    assert.matches("X%-Bad", helper.error_of(H.write_response, server, req, 200,
                                            {["X-Bad"] = "a\r\nInjected: 1"}))
    assert.matches("name", helper.error_of(H.write_response, server, req, 200,
                                          {["X\nY"] = "a"}))
    for _, name in ipairs {"X Y", "X:Y", ""} do
      assert.matches("is not a token", helper.error_of(H.write_response, server, req, 200,
                                                      {[name] = "a"}))
    end
    assert.matches("X%-Nul", helper.error_of(H.write_response, server, req, 200,
                                            {["X-Nul"] = {"ok", "a\0b"}}))
    assert.matches("string", helper.error_of(H.write_response, server, req, 200,
                                            {["X-N"] = 1}))
    assert.equal("", received(client, server))
  end))
end)

describe("core._http streamed responses and the client side", function()
  it("writes a chunked head and chunks", paired(function(client, server)
    client:write(head("GET / HTTP/1.1", "Host: x"))
    local req = H.read_request(server, MAX)
    local chunked, keep = H.write_head(server, req, 200, {["X-A"] = "1"})
    assert.is_true(chunked)
    assert.is_true(keep)
    H.write_chunk(server, "hello")
    H.write_chunk(server, "")
    H.write_chunk(server, nil)
    local out = received(client, server)
    assert.matches("\r\nTransfer%-Encoding: chunked\r\n", out)
    assert.matches("\r\n\r\n5\r\nhello\r\n0\r\n\r\n$", out)
  end))

  it("streams a close-delimited body to HTTP/1.0", paired(function(client, server)
    client:write(head("GET / HTTP/1.0", "Connection: keep-alive"))
    local req = H.read_request(server, MAX)
    local chunked, keep = H.write_head(server, req, 200, {})
    assert.is_false(chunked)
    assert.is_false(keep)
    assert.matches("\r\nConnection: close\r\n", received(client, server))
  end))

  it("keeps Content-Length when the handler gives one", paired(function(client, server)
    client:write(head("GET / HTTP/1.1", "Host: x"))
    local req = H.read_request(server, MAX)
    local chunked, keep = H.write_head(server, req, 200, {["Content-Length"] = "3"})
    assert.is_false(chunked)
    assert.is_true(keep)
  end))

  it("writes a request that the server side reads", paired(function(client, server)
    H.write_request(client, "POST", "/up?a=1", {Host = "h"}, "data")
    local req = H.read_request(server, MAX)
    assert.equal("POST", req.method)
    assert.equal("a=1", req.query)
    assert.equal(4, req.body_length)
    assert.equal("data", H.read_body(server, req, 100))
  end))

  it("reads a response, skipping 100 Continue", paired(function(client, server)
    H.continue(server)
    H.write_response(server, nil, 201, {}, "yes")
    local res = H.read_response(client, MAX, "GET")
    assert.equal(201, res.status)
    assert.equal("Created", res.reason)
    assert.equal("1.1", res.version)
    assert.equal(3, res.body_length)
    assert.is_false(res.until_close)
    assert.equal("yes", H.read_body(client, res, 100))
  end))

  it("frames responses by RFC 9112 §6.3", paired(function(client, server)
    server:write("HTTP/1.1 200 OK\r\n\r\n"
                 .. "HTTP/1.1 204 No Content\r\n\r\n"
                 .. "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n"
                 .. "HTTP/1.1 200 OK\r\n\r\nuntil close")
    local r = H.read_response(client, MAX, "HEAD")
    assert.is_true(r.keep_alive)
    assert.equal("", H.read_body(client, r, 100))
    r = H.read_response(client, MAX, "GET")
    assert.equal("", H.read_body(client, r, 100))
    r = H.read_response(client, MAX, "GET")
    assert.is_true(r.chunked)
    assert.equal("ab", H.read_body(client, r, 100))
    r = H.read_response(client, MAX, "GET")
    assert.is_true(r.until_close)
    assert.is_false(r.keep_alive)
    server:close()
    assert.equal("until close", H.read_body(client, r, 100))
    assert.is_nil(H.read_response(client, MAX, "GET"))
  end))

  it("raises an HTTPError without status on a malformed response", paired(function(client, server)
    server:write("HTTP/1.1 abc\r\n\r\n")
    local err = helper.error_of(H.read_response, client, MAX, "GET")
    assert.is_true(lasync.HTTPError:is(err))
    assert.is_nil(err.status)
  end))

  it("raises an HTTPError on a response coding it cannot decode", paired(function(client, server)
    server:write("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n")
    local err = helper.error_of(H.read_response, client, MAX, "GET")
    assert.is_true(lasync.HTTPError:is(err), tostring(err))
    assert.matches("unsupported transfer coding", tostring(err))
  end))
end)

-- Request heads read by core._http and by Debian's libhttp-parser alone
-- (spec/http/http_parser_oracle.c, built here against -lhttp_parser; it
-- stops at the end of the head as src/http.c does). Where http_parser
-- refuses a head, core._http refuses it too; where it takes one, core._http
-- reads the same method, target, version and fields (values without their
-- trailing whitespace, which http_parser keeps) or refuses it on purpose,
-- with one of these messages (RFC 9112 allows or asks for each):
--   bare LF            http_parser ends lines at a lone LF; a proxy that
--                      does not would read another request (§2.2)
--   obsolete folding   http_parser unfolds; we refuse (§5.2)
--   not a token        Debian's http_parser lets a space in a field name
--                      ("Host : x"), §5.1 asks for 400
--   Host               http_parser does not look at Host (§3.2)
--   HTTP/1.0 TE        Transfer-Encoding in 1.0: §6.1 asks to distrust it
--   transfer coding    anything but exactly "chunked" (501, §6.1); the
--                      check of http_parser comes after the head, where
--                      both stop
--   HTTP version       http_parser takes any digit.digit (505)
-- The cases: the seeds of fuzz/corpus/head/ (decided as above) and our own,
-- each with what must happen: "ok" (both read it), "both" (both refuse
-- it) or the message with which core._http alone refuses it.
describe("core._http.read_request against Debian's libhttp-parser", function()
  local ROOT = debug.getinfo(1, "S").source:match("^@(.-)spec/http/[^/]*$")
  local STRICTER = {"bare LF in head", "obsolete line folding", "not a token",
                    "exactly one Host", "Transfer%-Encoding in an HTTP/1%.0",
                    "unsupported transfer coding", "unsupported HTTP version"}

  local function rq(line, ...) return head(line, "Host: h", ...) end
  local own = {
    {"ok", rq("GET / HTTP/1.1")},
    {"ok", "\r\n\r\n" .. rq("GET /after-empty-lines HTTP/1.1")},
    {"ok", rq("GET http://h:8/p?q=1 HTTP/1.1")},
    {"ok", rq("OPTIONS * HTTP/1.1")},
    {"ok", rq("CONNECT h:443 HTTP/1.1")},
    {"ok", rq("M-SEARCH * HTTP/1.1")},
    {"ok", rq("PATCH /a?b?c HTTP/1.1")},
    {"ok", rq("GET /a? HTTP/1.1")},
    {"ok", rq("GET /%41%00 HTTP/1.1")},
    {"ok", rq("GET / HTTP/1.1", "X-A: 1", "x-a: 2", "X-B:\t lead", "X-A: 3 \t")},
    {"ok", rq("GET / HTTP/1.1", "X-Empty:", "X-Blank:   ", "X-Colon: a:b: c")},
    {"ok", rq("GET / HTTP/1.1", "X-!#$%&'*+.^_`|~09: token chars")},
    {"ok", rq("GET / HTTP/1.1", "X-Obs: caf\xc3\xa9 \x80\xff")},
    {"ok", rq("POST / HTTP/1.1", "Content-Length: 3") .. "abc"},
    {"ok", rq("POST / HTTP/1.1", "Content-Length: 0")},
    {"ok", rq("POST / HTTP/1.1", "Content-Length: 007 ")},
    {"ok", rq("POST / HTTP/1.1", "Transfer-Encoding: Chunked") .. "0\r\n\r\n"},
    {"ok", rq("GET /1 HTTP/1.1") .. rq("GET /2 HTTP/1.1")},
    {"ok", head("GET / HTTP/1.0")},
    {"ok", head("GET / HTTP/1.1", "Host:")},
    {"ok", head("GET / HTTP/1.1", "hOsT: h")},
    {"ok", rq("GET / HTTP/1.1", "Connection: close, Upgrade", "Upgrade: websocket")},
    {"both", rq("GET / HTTP/1.1 extra")},
    {"both", rq("get / HTTP/1.1")},
    {"both", rq("BREW / HTTP/1.1")},
    {"both", rq("GET /a b HTTP/1.1")},
    {"both", rq("GET / HTTP/1.1x")},
    {"both", rq("GET / HTTP/1")},
    {"both", rq("GET / FTP/1.1")},
    {"both", rq("GET /\127 HTTP/1.1")},
    {"both", rq("POST / HTTP/1.1", "Content-Length: 3", "Transfer-Encoding: chunked")},
    {"both", rq("POST / HTTP/1.1", "Transfer-Encoding: chunked", "Content-Length: 3")},
    {"both", rq("POST / HTTP/1.1", "Content-Length: 3", "Content-Length: 3")},
    {"both", rq("POST / HTTP/1.1", "Content-Length: 3", "Content-Length: 4")},
    {"both", rq("POST / HTTP/1.1", "Content-Length: 3, 3")},
    {"both", rq("POST / HTTP/1.1", "Content-Length: x")},
    {"both", rq("POST / HTTP/1.1", "Content-Length: -1")},
    {"both", rq("POST / HTTP/1.1", "Content-Length: 1 2")},
    {"both", rq("POST / HTTP/1.1", "Content-Length:")},
    {"both", rq("POST / HTTP/1.1", "Content-Length: 99999999999999999999")},
    {"both", rq("GET / HTTP/1.1", "X: a\0b")},
    {"both", rq("GET / HTTP/1.1", "X\0Y: b")},
    {"both", rq("GET /\0 HTTP/1.1")},
    {"both", rq("GET / HTTP/1.1", "X: a\1b")},
    {"both", rq("GET / HTTP/1.1", "X: a\127b")},
    {"both", rq("GET / HTTP/1.1", "X: a\rb")},
    {"both", rq("GET / HTTP/1.1", "NoColon")},
    {"both", rq("GET / HTTP/1.1", ": no name")},
    {"both", rq("GET / HTTP/1.1", "X(Y): v")},
    {"both", rq("GET / HTTP/1.1", "X\tY: v")},
    {"both", "GET / HTTP/1.1\r\nHost: h\r\n"},
    {"both", "GET / HTTP/1.1\r\nHost: h\r\n\r"},
    {"both", "GET / HT"},
    {"both", "\r\n\r\n"},
    {"both", ""},
    {"bare LF in head", "GET / HTTP/1.1\nHost: h\r\n\r\n"},
    {"bare LF in head", "GET / HTTP/1.1\r\nHost: h\n\r\n"},
    {"bare LF in head", "GET / HTTP/1.1\r\nHost: h\r\n\n"},
    {"bare LF in head", "GET / HTTP/1.1\nHost: h\n\n"},
    {"obsolete line folding", rq("GET / HTTP/1.1", "X: a", " b")},
    {"obsolete line folding", rq("GET / HTTP/1.1", "X: a", "\tb")},
    {"obsolete line folding", head("GET / HTTP/1.1", " Host: h")},
    {"not a token", rq("GET / HTTP/1.1", "Bad Name: v")},
    {"not a token", head("GET / HTTP/1.1", "Host : h")},
    {"exactly one Host", head("GET / HTTP/1.1")},
    {"exactly one Host", rq("GET / HTTP/1.1", "Host: other")},
    {"Transfer%-Encoding in an HTTP/1%.0", head("POST / HTTP/1.0",
                                               "Transfer-Encoding: chunked")},
    {"unsupported transfer coding", rq("POST / HTTP/1.1", "Transfer-Encoding: gzip")},
    {"unsupported transfer coding", rq("POST / HTTP/1.1",
                                       "Transfer-Encoding: gzip, chunked")},
    {"unsupported transfer coding", rq("POST / HTTP/1.1", "Transfer-Encoding: chunked",
                                       "Transfer-Encoding: chunked")},
    {"unsupported HTTP version", rq("GET / HTTP/2.0")},
    {"unsupported HTTP version", rq("GET / HTTP/1.2")},
    {"unsupported HTTP version", rq("GET / HTTP/0.9")},
  }

  local function unhex(s)
    return (s:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end))
  end

  -- http_parser's decision on each raw head: {ok = true, method, version,
  -- target, fields = {{name, value}...}} or {ok = false, why}.
  local function oracle(raws)
    local base = os.tmpname()
    local exe, input = base .. ".oracle", base .. ".in"
    -- the C compiler must not run under test-asan's LD_PRELOAD
    local built = os.execute(("env -u LD_PRELOAD cc -std=c11 -o '%s' '%s' -lhttp_parser")
      :format(exe, ROOT .. "spec/http/http_parser_oracle.c"))
    assert(built, "cannot build the http_parser oracle")
    local f = assert(io.open(input, "wb"))
    for _, raw in ipairs(raws) do f:write(#raw, "\n", raw) end
    f:close()
    local out = assert(io.popen(("env -u LD_PRELOAD '%s' < '%s'"):format(exe, input)))
    local got = {}
    for line in out:lines() do
      local words = {}
      for w in line:gmatch("%S+") do words[#words + 1] = w end
      if words[1] == "ok" then
        local d = {ok = true, method = words[2], version = words[3] .. "." .. words[4],
                   target = unhex(words[5] or ""), fields = {}}
        for i = 6, #words do
          local name, value = words[i]:match("^(%x*)=?(%x*)$")
          d.fields[#d.fields + 1] = {unhex(name), unhex(value)}
        end
        got[#got + 1] = d
      else
        got[#got + 1] = {ok = false, why = line}
      end
    end
    assert(out:close())
    os.remove(base)
    os.remove(exe)
    os.remove(input)
    assert.equal(#raws, #got, "the oracle answered every case")
    return got
  end

  -- core._http's decision: true, Message (or nil at EOF); or false, error.
  local function lasync_reads(raw)
    local client, server, done = util.pair()
    client:write(raw)
    client:write_eof()
    local ok, res = pcall(H.read_request, server, 1 << 20)
    done()
    return ok, res
  end

  -- The fields as pairs(headers) gives them: lowercased names in order of
  -- first appearance, repeated ones joined with ", ".
  local function joined(fields)
    local order, value = {}, {}
    for _, f in ipairs(fields) do
      local name, v = f[1]:lower(), f[2]:gsub("[ \t]+$", "")
      if value[name] then value[name] = value[name] .. ", " .. v
      else order[#order + 1] = name; value[name] = v end
    end
    local list = {}
    for i, name in ipairs(order) do list[i] = name .. "=" .. value[name] end
    return list
  end

  local function same_read(d, req, what)
    assert.equal(d.method, req.method, what)
    assert.equal(d.version, req.version, what)
    assert.equal(d.target:match("^[^?]*"), req.path, what)
    assert.equal(d.target:match("%?(.*)$") or "", req.query, what)
    local seen = {}
    for k, v in pairs(req.headers) do seen[#seen + 1] = k .. "=" .. v end
    assert.same(joined(d.fields), seen, what)
  end

  -- One case: want is "ok", "both", a STRICTER message, or nil (a seed:
  -- whichever of them holds).
  local function compare(raw, d, want)
    local what = ("%q"):format(raw)
    local ok, res = lasync_reads(raw)
    local refused = not ok or res == nil
    if not d.ok then
      assert.is_true(refused, "core._http takes what http_parser refuses: " .. what)
      assert.is_true(want == nil or want == "both", "both refuse " .. what)
      return
    end
    if ok and res then
      assert.is_true(want == nil or want == "ok", "core._http takes " .. what)
      return same_read(d, res, what)
    end
    assert.is_true(lasync.HTTPError:is(res), tostring(res))
    local why
    for _, pattern in ipairs(STRICTER) do
      if res.message:match(pattern) then why = pattern end
    end
    assert.is_not_nil(why, "refused for no listed reason: " .. res.message .. " " .. what)
    assert.is_true(want == nil or want == why,
                   ("%s wanted, refused (%s): %s"):format(want, res.message, what))
  end

  it("agrees on our own cases", helper.async(function()
    local raws = {}
    for i, c in ipairs(own) do raws[i] = c[2] end
    for i, d in ipairs(oracle(raws)) do compare(raws[i], d, own[i][1]) end
  end))

  it("agrees on the seeds of fuzz/corpus/head", helper.async(function()
    local dir = ROOT .. "fuzz/corpus/head/"
    local ls = assert(io.popen(("ls '%s'"):format(dir)))
    local raws = {}
    for name in ls:lines() do raws[#raws + 1] = helper.read_file(dir .. name) end
    ls:close()
    assert.is_true(#raws >= 50, "the seeds are there")
    for i, d in ipairs(oracle(raws)) do compare(raws[i], d) end
  end))
end)
