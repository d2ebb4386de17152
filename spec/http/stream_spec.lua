--- lasync.http.serve: streamed responses (req:start_response/write/finish,
-- backpressure), chunked request bodies, Expect: 100-continue, large
-- uploads.
local lasync = require "lasync"
local helper = require "helper"
local util = require "http_util"

local async = helper.async

describe("lasync.http.serve streams", function()
  local scratch = helper.scratch()
  lazy_teardown(scratch.cleanup)

  it("streams a chunked response that Python reads piece by piece", async(function()
    local go = {}
    local srv, port = util.serve(function(req)
      req:start_response(200, {["Content-Type"] = "text/plain"})
      for i = 1, 3 do
        go[i] = lasync.Future()
        req:write("part" .. i .. "\n")
        go[i]:await()
      end
      req:finish()
    end)
    -- Each line is read before the next is written: the client tells
    -- the handler to go on by requesting /next (a second connection).
    local next_srv, next_port = util.serve(function()
      for i = 1, 3 do
        if go[i] and not go[i]:done() then
          go[i]:set_result()
          return 200, "ok"
        end
      end
      return 409, "nothing to go on with"
    end)
    local out = util.python([[
import sys, http.client
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
c.request("GET", "/stream")
r = c.getresponse()
print(r.getheader("Transfer-Encoding"))
for i in range(3):
    line = r.fp.readline()   # the chunk-size line
    print(r.fp.readline().decode().strip())
    r.fp.readline()          # the CRLF after the chunk
    n = http.client.HTTPConnection("127.0.0.1", int(sys.argv[2]))
    n.request("GET", "/next")
    assert n.getresponse().status == 200
print(r.fp.read(5).decode().strip())
]], port, next_port)
    assert.equal("chunked\npart1\npart2\npart3\n0\n", out)
    util.stop(srv)
    util.stop(next_srv)
  end))

  it("sends a streamed response with the handler's Content-Length as is", async(function()
    local srv, port = util.serve(function(req)
      req:start_response(200, {["Content-Length"] = "10"})
      req:write("01234")
      req:write("56789")
    end)
    local out, err = util.curl("-i", util.url(port))
    assert.matches("\r\nContent%-Length: 10\r\n", out, nil, err)
    assert.not_matches("Transfer%-Encoding", out)
    assert.equal("0123456789", out:match("\r\n\r\n(.*)$"))
    util.stop(srv)
  end))

  it("ends a streamed response to HTTP/1.0 with the connection", async(function()
    local srv, port = util.serve(function(req)
      req:start_response(200)
      req:write("old ")
      req:write("client")
    end)
    local out, err = util.curl("-0", "-i", util.url(port))
    assert.matches("\r\nConnection: close\r\n", out, nil, err)
    assert.not_matches("Transfer%-Encoding", out)
    assert.equal("old client", out:match("\r\n\r\n(.*)$"))
    util.stop(srv)
  end))

  it("blocks req:write while the client does not read", async(function()
    local wrote, total = 0, 64 * 1024 * 1024
    local srv, port = util.serve(function(req)
      req:start_response(200)
      local piece = ("x"):rep(64 * 1024)
      while wrote < total do
        req:write(piece)
        wrote = wrote + #piece
      end
    end)
    local r, w = lasync.open_connection("127.0.0.1", port)
    w:write("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    -- The client reads nothing: the handler stops in req:write long before
    -- the end, its writes held by the socket buffers and the high-water mark.
    local seen = -1
    while seen ~= wrote do
      seen = wrote
      lasync.sleep(0.05)
    end
    assert.is_true(wrote < total / 4, tostring(wrote))
    w:close()
    r:wait_closed()
    util.stop(srv)
  end))

  it("decodes a chunked upload from curl", async(function()
    local srv, port = util.serve(function(req)
      return 200, ("%s %d %s"):format(tostring(req.headers["transfer-encoding"]), #req.body,
        req.body:sub(1, 5))
    end)
    local file = scratch.write("upload", ("abcde"):rep(20000))
    local out, err = util.curl("-H", "Transfer-Encoding: chunked", "--data-binary", "@" .. file,
      util.url(port))
    assert.equal("chunked 100000 abcde", out, err)
    util.stop(srv)
  end))

  it("answers Expect: 100-continue before the body is read", async(function()
    local srv, port = util.serve(function(req)
      return 200, ("%s %d"):format(req.headers.expect, #req.body)
    end)
    local file = scratch.write("big", ("0123456789"):rep(50000))
    local out, err = util.curl("-v", "-H", "Expect: 100-continue", "--data-binary", "@" .. file,
      util.url(port))
    assert.equal("100-continue 500000", out)
    assert.matches("HTTP/1.1 100 Continue", err)
    util.stop(srv)
  end))

  it("refuses an announced upload over max_body_size without reading it", async(function()
    local called = false
    local srv, port = util.serve(function() called = true return 200, "" end, {max_body_size = 1000})
    local file = scratch.write("huge", ("z"):rep(2 * 1024 * 1024))
    local out = util.curl("-o", "/dev/null", "-w", "%{http_code}", "--data-binary", "@" .. file,
      util.url(port))
    assert.equal("413", out)
    -- A chunked one is refused once it passes the bound.
    out = util.curl("-o", "/dev/null", "-w", "%{http_code}", "-H", "Transfer-Encoding: chunked",
      "--data-binary", "@" .. file, util.url(port))
    assert.equal("413", out)
    assert.is_false(called)
    util.stop(srv)
  end))

  it("closes the connection after a handler that ignores a large upload", async(function()
    local srv, port = util.serve(function() return 200, "ignored" end,
      {max_body_size = 8 * 1024 * 1024})
    local file = scratch.write("upload2", ("u"):rep(4 * 1024 * 1024))
    local out, err = util.curl("--data-binary", "@" .. file, util.url(port),
      "-H", "Connection: close")
    assert.equal("ignored", out, err)
    util.stop(srv)
  end))
end)
