--- lasync.http.serve, the common path: requests with and without a
-- Content-Length body, keep-alive, pipelining, HTTP/1.0, HEAD, a handler
-- error. Clients: curl, Python's http.client and raw bytes.
local helper = require "helper"
local util = require "http_util"

local async = helper.async

-- A handler that tells what it got: method, path, query, version, body.
local function echo(req)
  return 200, ("%s %s ?%s %s %d:%s"):format(req.method, req.path, req.query, req.version,
    #req.body, req.body), {["Content-Type"] = "text/plain", ["X-Peer-Port"] = tostring(req.peer.port)}
end

describe("lasync.http.serve", function()
  it("answers curl with the handler's status, body and headers, and a Date", async(function()
    local srv, port = util.serve(echo)
    local out, err, code = util.curl("-i", util.url(port, "/a/b?x=1&y"))
    assert.equal(0, code, err)
    assert.matches("^HTTP/1.1 200 OK\r\n", out)
    assert.matches("\r\nContent%-Type: text/plain\r\n", out)
    assert.matches("\r\nDate: %a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT\r\n", out)
    assert.matches("\r\nContent%-Length: 22\r\n", out)
    assert.matches("\r\n\r\nGET /a/b %?x=1&y 1.1 0:$", out)
    util.stop(srv)
  end))

  it("reads a Content-Length body into req.body", async(function()
    local srv, port = util.serve(echo)
    local out, err = util.curl("-d", "hello=world", util.url(port, "/form"))
    assert.equal("POST /form ? 1.1 11:hello=world", out, err)
    util.stop(srv)
  end))

  it("keeps a connection alive for curl's next URL", async(function()
    local srv, port = util.serve(echo)
    local out = util.curl("-D", "-", util.url(port, "/1"), util.url(port, "/2"))
    local ports = {}
    for p in out:gmatch("X%-Peer%-Port: (%d+)") do ports[#ports + 1] = p end
    assert.equal(2, #ports)
    assert.equal(ports[1], ports[2])
    util.stop(srv)
  end))

  it("keeps a connection alive for Python's http.client", async(function()
    local srv, port = util.serve(echo)
    local out = util.python([[
import sys, http.client
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
for path in ("/x", "/y", "/z"):
    c.request("PUT", path, body=b"data" + path.encode())
    r = c.getresponse()
    print(r.status, r.getheader("X-Peer-Port"), r.read().decode())
]], port)
    local lines = {}
    for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.equal(3, #lines)
    local peer = lines[1]:match("^200 (%d+) ")
    for i, path in ipairs {"/x", "/y", "/z"} do
      assert.equal(("200 %s PUT %s ? 1.1 6:data%s"):format(peer, path, path), lines[i])
    end
    util.stop(srv)
  end))

  it("answers pipelined requests in order", async(function()
    local srv, port = util.serve(function(req)
      if req.path == "/slow" then require("lasync").sleep(0.02) end
      return 200, req.path .. ":" .. req.body
    end)
    local got = util.raw(port, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n"
      .. "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
      .. "GET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    local res = util.responses(got)
    assert.equal(3, #res)
    assert.same({"/slow:", "/b:abc", "/c:"}, {res[1].body, res[2].body, res[3].body})
    assert.equal("close", res[3].headers.connection)
    util.stop(srv)
  end))

  it("answers HTTP/1.0 and closes, unless asked to keep alive", async(function()
    local srv, port = util.serve(echo)
    local out, err = util.curl("-0", "-i", util.url(port, "/old"))
    assert.matches("\r\n\r\nGET /old %? 1.0 0:$", out, nil, err)
    local got = util.raw(port, "GET /1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
      .. "GET /2 HTTP/1.0\r\n\r\n")
    local res = util.responses(got)
    assert.equal(2, #res)
    assert.equal("keep-alive", res[1].headers.connection)
    assert.matches("^GET /2 ", res[2].body)
    util.stop(srv)
  end))

  it("sends no body for HEAD, with the Content-Length of GET", async(function()
    local srv, port = util.serve(function() return 200, "twelve bytes" end)
    local got = util.raw(port, "HEAD / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert.matches("^HTTP/1.1 200 OK\r\n", got)
    assert.matches("\r\nContent%-Length: 12\r\n", got)
    assert.equal("\r\n\r\n", got:sub(-4))
    local out, err, code = util.curl("-I", util.url(port))
    assert.equal(0, code, err)
    assert.matches("Content%-Length: 12", out)
    util.stop(srv)
  end))

  it("answers a handler error with 500, reports it and goes on", async(function()
    local reports = helper.reports()
    local srv, port = util.serve(function(req)
      if req.path == "/fail" then error("handler broke") end
      return 200, "fine"
    end)
    local res = util.responses(util.raw(port, "GET /fail HTTP/1.1\r\nHost: h\r\n\r\n"
      .. "GET /ok HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"))
    assert.same({500, 200}, {res[1].status, res[2].status})
    assert.equal("fine", res[2].body)
    assert.equal(1, #reports)
    assert.matches("handler broke", tostring(reports[1].exception))
    assert.matches("handler broke", reports[1].traceback)
    util.stop(srv)
  end))

  it("refuses a body over max_body_size with 413, unread", async(function()
    local srv, port = util.serve(echo, {max_body_size = 10})
    local res = util.responses(util.raw(port,
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n"))
    assert.equal(413, res[1].status)
    assert.equal("close", res[1].headers.connection)
    util.stop(srv)
  end))

  it("answers a malformed request with 400 and closes", async(function()
    local srv, port = util.serve(echo)
    local res = util.responses(util.raw(port, "GET / HTTP/1.1\nHost: h\r\n\r\n"))
    assert.equal(1, #res)
    assert.equal(400, res[1].status)
    -- a bad chunk size in the body
    res = util.responses(util.raw(port, "POST / HTTP/1.1\r\nHost: h\r\n"
      .. "Transfer-Encoding: chunked\r\n\r\nzz\r\n"))
    assert.equal(1, #res)
    assert.equal(400, res[1].status)
    util.stop(srv)
  end))

  it("answers a head over max_headers_size with 431", async(function()
    local srv, port = util.serve(echo, {max_headers_size = 200})
    local res = util.responses(util.raw(port, "GET / HTTP/1.1\r\nHost: h\r\nX-Big: "
      .. ("b"):rep(300) .. "\r\n\r\n"))
    assert.equal(431, res[1].status)
    util.stop(srv)
  end))

  it("answers 500 when the handler returns no response", async(function()
    local reports = helper.reports()
    local srv, port = util.serve(function() return "200", "body" end)
    local res = util.responses(util.raw(port, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"))
    assert.equal(500, res[1].status)
    assert.matches("HTTP handler returned string, string, nil: status %(integer%)",
      tostring(reports[1].exception))
    util.stop(srv)
  end))

  it("checks its arguments", function()
    local http = require "lasync.http"
    assert.error_matches(function() http.serve(42) end,
      "bad argument #1 to 'serve' %(handler function expected, got number%)")
    assert.error_matches(function() http.serve(echo, {timeout = -1}) end,
      "opts.timeout must be a positive number, got %-1")
    assert.error_matches(function() http.serve(echo, {bogus = 1}) end, "unknown option 'bogus'")
  end)
end)
