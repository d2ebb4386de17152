--- lasync.http.serve: the timeout (408 for a slow head, a silent close of
-- an idle keep-alive connection), a slowloris, and server:close().
local lasync = require "lasync"
local helper = require "helper"
local util = require "http_util"

local async = helper.async

-- Reads one response with a Content-Length body from r.
local function read_response(r)
  local head = r:readuntil("\r\n\r\n")
  local n = tonumber(head:match("\r\n[Cc]ontent%-[Ll]ength: (%d+)")) or 0
  return head, r:readexactly(n)
end

describe("lasync.http.serve timeout", function()
  -- Serves "first" with a 0.1 s timeout, sends raw on a connection and
  -- returns all the server sends until it closes the connection.
  local function after_timeout(raw)
    local srv, port = util.serve(function() return 200, "first" end, {timeout = 0.1})
    local r, w = lasync.open_connection("127.0.0.1", port)
    w:write(raw)
    local got = r:read(-1)
    w:close()
    util.stop(srv)
    return got
  end

  it("answers a head begun but not finished in time with 408 and closes", async(function()
    local got = after_timeout("GET / HTTP/1.1\r\nHo")
    assert.matches("^HTTP/1.1 408 ", got)
    assert.matches("\r\nConnection: close\r\n", got)
  end))

  it("answers a head left unfinished after a pipelined request with 408", async(function()
    local got = after_timeout("GET / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHo")
    assert.matches("^HTTP/1.1 200 .-\r\n\r\nfirstHTTP/1.1 408 ", got)
  end))

  it("answers a body that does not arrive in time with 408", async(function()
    local got = after_timeout("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
    assert.matches("^HTTP/1.1 408 ", got)
  end))

  it("closes an idle keep-alive connection silently", async(function()
    assert.matches("^HTTP/1.1 200 .-\r\n\r\nfirst$", after_timeout("GET / HTTP/1.1\r\nHost: h\r\n\r\n"))
    -- a connection that never sends a byte too
    local srv, port = util.serve(function() return 200, "" end, {timeout = 0.1})
    assert.equal("", util.raw(port, ""))
    util.stop(srv)
  end))

  -- A kept-alive connection idle past the server's linger (0.1 s) parks
  -- without a task (src/server.c); it must be served, timed out and
  -- closed as any other.
  describe("a parked connection", function()
    local function first(timeout)
      local n = 0
      local srv, port = util.serve(function()
        n = n + 1
        return 200, "n" .. n
      end, {timeout = timeout})
      local r, w = lasync.open_connection("127.0.0.1", port)
      w:write("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
      assert.equal("n1", select(2, read_response(r)))
      lasync.sleep(0.3)  -- parked by now
      return srv, r, w
    end

    it("is served when its next request comes", async(function()
      local srv, r, w = first(5)
      w:write("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
      assert.equal("n2", select(2, read_response(r)))
      lasync.sleep(0.3)
      w:write("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
      assert.equal("n3", select(2, read_response(r)))
      assert.equal("", r:read(-1))
      w:close()
      util.stop(srv)
    end))

    it("is closed without an answer after the timeout", async(function()
      local srv, r, w = first(0.5)
      local early = lasync.spawn(lasync.sleep, 0.1)  -- ends before the timeout
      assert.equal("", r:read(-1))
      assert.is_true(early:done())
      w:close()
      util.stop(srv)
    end))

    it("is closed at once by server:close(), and wait_closed() returns", async(function()
      local srv, r, w = first(30)
      srv:close()
      assert.equal("", lasync.wait_for(function() return r:read(-1) end, 2))
      lasync.wait_for(function() srv:wait_closed() end, 2)
      w:close()
    end))
  end)

  it("serves a normal request while a slowloris holds connections", async(function()
    local srv, port = util.serve(function() return 200, "served" end,
      {timeout = 1, backlog = 512})
    local answers = {}
    local function slow(i)
      local r, w = lasync.open_connection("127.0.0.1", port)
      w:write("GET / HTTP/1.1\r\n")
      -- one header byte each 0.5 s, for at most 3 s (the server's
      -- timeout is 1 s), reading what the server sends meanwhile
      local reader = lasync.spawn(r.read, r, -1)
      for _ = 1, 6 do
        if reader:done() or not pcall(w.write, w, "X") then break end
        lasync.sleep(0.5)
      end
      answers[i] = reader:await():match("^HTTP/1.1 (%d+)")
      w:close()
    end
    local tasks = {}
    for i = 1, 500 do tasks[i] = lasync.spawn(slow, i) end
    lasync.sleep(0.2)
    local out, err = util.curl(util.url(port))
    assert.equal("served", out, err)
    for _, t in ipairs(tasks) do t:await() end
    for i = 1, 500 do assert.equal("408", answers[i]) end
    util.stop(srv)
  end, {deadline = 15}))
end)

describe("lasync.http server:close()", function()
  it("closes idle connections at once and lets requests in flight finish", async(function()
    local release, entered = lasync.Future(), lasync.Future()
    local srv, port = util.serve(function(req)
      if req.path == "/wait" then
        entered:set_result()
        release:await()
      end
      return 200, req.path
    end)
    local idle_r, idle_w = lasync.open_connection("127.0.0.1", port)
    idle_w:write("GET /idle HTTP/1.1\r\nHost: h\r\n\r\n")
    assert.equal("/idle", select(2, read_response(idle_r)))
    local busy_r, busy_w = lasync.open_connection("127.0.0.1", port)
    busy_w:write("GET /wait HTTP/1.1\r\nHost: h\r\n\r\n")
    entered:await()
    srv:close()
    assert.equal("", idle_r:read(-1))  -- closed at once, while /wait runs
    assert.is_false(release:done())
    release:set_result()
    local head, body = read_response(busy_r)
    assert.equal("/wait", body)
    assert.matches("\r\nConnection: close\r\n", head)
    assert.equal("", busy_r:read(-1))
    srv:wait_closed()
    idle_w:close()
    busy_w:close()
  end))

  it("closes idle connections when serve_forever() is cancelled", async(function()
    local srv, port = util.serve(function() return 200, "x" end)
    local forever = lasync.spawn(srv.serve_forever, srv)
    local r, w = lasync.open_connection("127.0.0.1", port)
    w:write("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert.equal("x", select(2, read_response(r)))
    forever:cancel()
    assert.is_true(helper.is_cancelled(select(2, pcall(forever.await, forever))))
    assert.equal("", r:read(-1))
    srv:wait_closed()
    w:close()
  end))
end)
