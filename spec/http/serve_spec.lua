--- `lasync serve --http` (scripts/lasync, lua/lasync/serve.lua), run in
-- the background by a shell; the spec finds its pid in its log, stops it
-- by that pid (or kills it in after_each), and talks to it with curl.
local lasync = require "lasync"
local helper = require "helper"
local util = require "http_util"

-- The checkout: this file is <root>spec/http/serve_spec.lua.
local ROOT = debug.getinfo(1, "S").source:match("^@(.-)spec/http/[^/]*$")

describe("lasync serve --http", function()
  local scratch = helper.scratch()
  local running = {}  -- servers not yet stopped
  local count = 0

  after_each(function()
    for srv in pairs(running) do helper.kill_logged(srv.log()) end
    running = {}
  end)
  lazy_teardown(scratch.cleanup)

  -- Starts `lasync serve ARGS...` in the checkout; returns the server
  -- {pid=, log=} (log() is its stderr so far) and its port, once it listens.
  local function start(...)
    count = count + 1
    local log = util.touch(scratch.tmp("log" .. count))
    local status = util.touch(scratch.tmp("status" .. count))
    local words = {}
    for i, a in ipairs {...} do words[i] = util.quote(a) end
    assert(os.execute(("cd %s && (lasync serve %s >/dev/null 2>%s </dev/null; echo $? >%s) &")
      :format(util.quote(ROOT), table.concat(words, " "), log, status)))
    local srv = {log = function() return helper.read_file(log) end, status = status}
    running[srv] = true
    local port = util.poll(function() return srv.log():match("listening on 127%.0%.0%.1:(%d+)") end)
    srv.pid = srv.log():match("lasync%[(%d+)%]")
    return srv, tonumber(port)
  end

  -- SIGTERM to its first process; returns its exit status.
  local function stop(srv)
    assert(os.execute("kill -TERM " .. srv.pid))
    local code = util.poll(function() return tonumber(helper.read_file(srv.status)) end)
    running[srv] = nil
    return code
  end

  local LINE = "%d%d%d%d%-%d%d%-%d%dT[%d:.]+Z lasync%[%d+%]: 127%.0%.0%.1:%d+ "

  it("serves examples/http_hello.lua with an access log; SIGTERM: exit 0", helper.async(function()
    local srv, port = start("examples/http_hello.lua", "--http", "--listen", "127.0.0.1:0")
    local out, err = util.curl(util.url(port, "/greet?name=you"), util.url(port, "/x"))
    assert.equal("Hello, you!Hello, World!", out, err)
    local _, _, code = util.curl("-I", util.url(port, "/h"))
    assert.equal(0, code)
    local big = scratch.write("big", ("b"):rep(2 * 1024 * 1024))  -- over 1 MiB
    assert.equal("413", (util.curl("-o", "/dev/null", "-w", "%{http_code}",
      "--data-binary", "@" .. big, util.url(port, "/big"))))
    -- an idle keep-alive connection does not hold up the stop
    local r, w = lasync.open_connection("127.0.0.1", port)
    w:write("GET /idle HTTP/1.1\r\nHost: h\r\n\r\n")
    r:readuntil("Hello, World!")
    assert.equal(0, stop(srv))
    assert.equal("", r:read(-1))
    w:close()
    local log = srv.log()
    assert.matches(LINE .. "GET /greet%?name=you 200 11 [%d.]+ms\n", log)
    assert.matches(LINE .. "GET /x 200 13 [%d.]+ms\n", log)
    assert.matches(LINE .. "HEAD /h 200 0 [%d.]+ms\n", log)
    assert.matches(LINE .. "POST /big 413 0 [%d.]+ms\n", log)
  end, {deadline = 10}))

  it("--quiet: no access log", helper.async(function()
    local srv, port = start("examples/http_hello.lua", "--http", "--quiet", "--listen", "127.0.0.1:0")
    assert.equal("Hello, World!", (util.curl(util.url(port))))
    assert.equal(0, stop(srv))
    assert.not_matches("GET /", srv.log())
  end, {deadline = 10}))

  it("serves the JSON API with --workers 2 and logs a handler error", helper.async(function()
    local srv, port = start("examples/http_api.lua", "--http", "--workers", "2",
      "--listen", "127.0.0.1:0")
    -- each worker has its own store: one connection goes to one worker
    local out, err = util.curl("-X", "PUT", "-d", '{"n": 1}', util.url(port, "/keys/a"),
      "--next", util.url(port, "/keys/a"), "--next", util.url(port, "/keys"),
      "--next", "-X", "DELETE", "-o", "/dev/null", "-w", "%{http_code}\n", util.url(port, "/keys/a"),
      "--next", "-o", "/dev/null", "-w", "%{http_code}\n", util.url(port, "/keys/a"))
    assert.equal('{"key":"a"}\n{"n":1}\n["a"]\n204\n404\n', out, err)
    out = util.curl(util.url(port, "/numbers?n=100000"))
    local n = 0
    for i in out:gmatch("%d+") do
      n = n + 1
      assert.equal(n, tonumber(i))
    end
    assert.equal(100000, n)
    assert.equal(0, stop(srv))
  end, {deadline = 15}))

  it("copies a key from an upstream with the HTTP client (http_api.lua)", helper.async(function()
    local srv, port = start("examples/http_api.lua", "--http", "--listen", "127.0.0.1:0")
    local copy = util.url(port, "/copy/a?from=" .. util.url(port, "") .. "&as=b")
    local out, err = util.curl("-X", "PUT", "-d", '{"n": 2}', util.url(port, "/keys/a"),
      "--next", "-X", "POST", copy, "--next", util.url(port, "/keys/b"),
      "--next", "-X", "POST", "-o", "/dev/null", "-w", "%{http_code}\n",
      util.url(port, "/copy/none?from=" .. util.url(port, "")))
    assert.equal('{"key":"a"}\n{"key":"b"}\n{"n":2}\n502\n', out, err)
    assert.equal(0, stop(srv))
  end, {deadline = 10}))

  it("logs a handler error with its traceback and answers 500", helper.async(function()
    local script = scratch.write("fail.lua", "return function(req) error('broken ' .. req.path) end\n")
    local srv, port = start(script, "--http", "--listen", "127.0.0.1:0")
    local out = util.curl("-o", "/dev/null", "-w", "%{http_code}", util.url(port, "/p"))
    assert.equal("500", out)
    assert.equal(0, stop(srv))
    assert.matches("Unhandled error in HTTP handler: [^\n]*broken /p\nstack traceback:", srv.log())
    assert.matches(LINE .. "GET /p 500 0 ", srv.log())
  end, {deadline = 10}))

  it("reloads the handler on SIGHUP", helper.async(function()
    local script = scratch.write("v.lua", "return function() return 200, 'v1' end\n")
    local srv, port = start(script, "--http", "--listen", "127.0.0.1:0")
    assert.equal("v1", (util.curl(util.url(port))))
    scratch.write("v.lua", "return function() return 200, 'v2' end\n")
    assert(os.execute("kill -HUP " .. srv.pid))
    util.poll(function() return srv.log():find("SIGHUP: reloaded", 1, true) end)
    assert.equal("v2", (util.curl(util.url(port))))
    assert.equal(0, stop(srv))
  end, {deadline = 10}))

  it("serves TLS", helper.async(function()
    local dir = ROOT .. "spec/fixtures/tls/"
    local srv, port = start("examples/http_hello.lua", "--http", "--listen", "127.0.0.1:0",
      "--tls-cert", dir .. "server.pem", "--tls-key", dir .. "server.key")
    local out, err = util.curl("--cacert", dir .. "ca.pem",
      ("https://127.0.0.1:%d/"):format(port))
    assert.equal("Hello, World!", out, err)
    assert.equal(0, stop(srv))
  end, {deadline = 10}))

  it("--idle-timeout closes an idle keep-alive connection", helper.async(function()
    local srv, port = start("examples/http_hello.lua", "--http", "--idle-timeout", "0.1",
      "--listen", "127.0.0.1:0")
    local r, w = lasync.open_connection("127.0.0.1", port)
    w:write("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert.matches("^HTTP/1.1 200 OK\r\n.*\r\n\r\nHello, World!$", r:read(-1))
    w:close()
    assert.equal(0, stop(srv))
  end, {deadline = 10}))

  it("serves examples/ws_chat.lua: SIGTERM sends close 1001 to its WebSockets", helper.async(function()
    local http = require "lasync.http"
    local srv, port = start("examples/ws_chat.lua", "--http", "--listen", "127.0.0.1:0")
    local ws = http.websocket_connect(("ws://127.0.0.1:%d/chat"):format(port))
    assert.are.same({"guest1 joined", "text"}, {ws:receive()})
    ws:send("hi")
    assert.are.same({"guest1: hi", "text"}, {ws:receive()})
    assert(os.execute("kill -TERM " .. srv.pid))
    assert.are.same({nil, 1001, "server shutting down"}, {ws:receive()})
    assert.equal(0, util.poll(function() return tonumber(helper.read_file(srv.status)) end))
    running[srv] = nil
    assert.matches(LINE .. "GET /chat 101 0 [%d.]+ms\n", srv.log())
  end, {deadline = 10}))

  it("refuses to serve examples/ws_chat.lua with --workers 2", helper.async(function()
    count = count + 1
    local log = scratch.tmp("log" .. count)
    local ok = os.execute(("cd %s && lasync serve examples/ws_chat.lua --http --workers 2 "
      .. "--listen 127.0.0.1:0 2>%s </dev/null"):format(util.quote(ROOT), log))
    assert.is_not_true(ok)
    assert.matches("separate chats", helper.read_file(log))
  end, {deadline = 10}))

  it("--workers 2 and SIGHUP: the old workers' WebSockets get 1001, new ones the new script",
    helper.async(function()
      local http = require "lasync.http"
      local src = [[
local http = require "lasync.http"
return function(req)
  local ws = http.websocket(req)
  while true do
    local data = ws:receive()
    if not data then return end
    ws:send("%s " .. data)
  end
end
]]
      local script = scratch.write("wsv.lua", src:format("v1"))
      local srv, port = start(script, "--http", "--workers", "2", "--listen", "127.0.0.1:0")
      local url = ("ws://127.0.0.1:%d/"):format(port)
      local old = http.websocket_connect(url)
      old:send("a")
      assert.are.same({"v1 a", "text"}, {old:receive()})
      scratch.write("wsv.lua", src:format("v2"))
      assert(os.execute("kill -HUP " .. srv.pid))
      assert.are.same({nil, 1001, "server shutting down"}, {old:receive()})
      -- Old workers accept until their SIGTERM is handled: connect once
      -- both have stopped, or the other one may still take the connection.
      util.poll(function() return select(2, srv.log():gsub(": stopped\n", "")) == 2 end)
      local new = http.websocket_connect(url)
      new:send("b")
      assert.are.same({"v2 b", "text"}, {new:receive()})
      assert(os.execute("kill -TERM " .. srv.pid))
      assert.are.same({nil, 1001, "server shutting down"}, {new:receive()})
      assert.equal(0, util.poll(function() return tonumber(helper.read_file(srv.status)) end))
      running[srv] = nil
    end, {deadline = 15}))
end)
