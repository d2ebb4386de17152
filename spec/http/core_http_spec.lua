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

local function rejects(status, raw, why)
  it(why .. " → " .. status, helper.async(function()
    local err = request_error(raw)
    assert.equal(status, err.status)
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
    assert.is_nil(req.body)
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
  rejects(400, head("GET / HTTP/1.1", "Host: x", "X: a\0b"), "a NUL")
  rejects(400, head("GET / HTTP/1.1", "Host: x", "X: a", " b"), "an obsolete line folding")
  rejects(400, head("GET / HTTP/1.1", "Host: x", "Bad Name: v"), "a field name not a token")
  rejects(400, head("GET / HTTP/1.1", "Host : x"), "a space before the colon")
  rejects(400, head("GET / HTTP/1.1", "Host: x", "NoColon"), "a line without a colon")
  rejects(400, head("POST / HTTP/1.1", "Host: x", "Content-Length: 3",
                    "Transfer-Encoding: chunked"), "Content-Length with Transfer-Encoding")
  rejects(400, head("POST / HTTP/1.1", "Host: x", "Content-Length: 3",
                    "Content-Length: 4"), "differing Content-Lengths")
  rejects(400, head("POST / HTTP/1.1", "Host: x", "Content-Length: x"),
          "a non-numeric Content-Length")
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

  local function bad_chunked(raw, why)
    it("raises 400 on " .. why, paired(function(client, server)
      local req = request(client, server, chunked .. raw)
      client:write_eof()
      assert.equal(400, helper.error_of(H.read_body, server, req, 100).status)
    end))
  end
  bad_chunked("x\r\n", "a bad chunk size")
  bad_chunked("5\nhello\r\n0\r\n\r\n", "a bare LF in a size line")
  bad_chunked("5\r\nhelloX\r\n0\r\n\r\n", "data not followed by CRLF")
  bad_chunked("10000000000000000\r\n", "a size too large")
  bad_chunked("0\r\nT: 1\n\r\n", "a bare LF in a trailer")
  bad_chunked("5\r\nhel", "a body cut short")
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
end)
