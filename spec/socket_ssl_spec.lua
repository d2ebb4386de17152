-- lasync.socket.ssl (docs/reference.md §12): LuaSec's wrap, sni and
-- dohandshake over lasync's TLS, client and server side, with
-- install()'s require "ssl". Certificates: spec/fixtures/tls.
local lasync = require "lasync"
local socket = require "lasync.socket"
local helper = require "helper"

local DIR = debug.getinfo(1, "S").source:match("^@(.-)[^/]*$") .. "fixtures/tls/"
local SERVER = {certfile = DIR .. "server.pem", keyfile = DIR .. "server.key"}

-- A lasync TLS echo server of one line; fn(port) runs while it serves.
local function with_tls_server(fn)
  local srv = lasync.start_server(function(r, w)
    w:write("echo " .. r:readline())
    w:drain()
  end, "127.0.0.1", 0, {ssl = SERVER})
  local _, port = srv:sockname()
  local ok, err = pcall(fn, port)
  srv:close()
  srv:wait_closed()
  if not ok then error(err, 0) end
end

describe("lasync.socket.ssl", function()
  it("wraps a client, sends the sni name, verifies the server", helper.async(function()
    with_tls_server(function(port)
      local c = socket.tcp()
      assert.are.equal(1, c:connect("127.0.0.1", port))
      local conn = assert(socket.ssl.wrap(c, {mode = "client", protocol = "any",
                                             verify = "peer", cafile = DIR .. "ca.pem"}))
      conn:sni("localhost")
      assert.is_true(conn:dohandshake())
      assert.is_true(conn:dohandshake())  -- done already
      assert.are.equal(6, conn:send("hello\n"))
      assert.are.equal("echo hello", conn:receive())
      assert.are.equal("CN=localhost", conn:getpeercertificate():subject())
      assert.truthy(conn:getpeercertificate():pem():find("BEGIN CERTIFICATE", 1, true))
      assert.are.same({nil, "closed", ""}, {conn:receive()})
      assert.are.equal(1, conn:close())
    end)
  end))

  it("fails the handshake of an untrusted server with OpenSSL's reason", helper.async(function()
    with_tls_server(function(port)
      local c = socket.tcp()
      c:connect("127.0.0.1", port)
      local conn = socket.ssl.wrap(c, {mode = "client", verify = "peer",
                                      cafile = DIR .. "other-ca.pem"})
      assert.are.same({nil, "unable to get local issuer certificate"}, {conn:dohandshake()})
      conn:close()
    end)
  end))

  it("wraps an accepted socket as a server (newcontext)", helper.async(function()
    local srv = assert(socket.bind("127.0.0.1", 0))
    local _, port = srv:getsockname()
    local client = lasync.spawn(function()
      local r, w = lasync.open_connection("127.0.0.1", tonumber(port),
        {ssl = {cafile = DIR .. "ca.pem"}, server_hostname = "localhost"})
      w:write("ping\n")
      local line = r:readline()
      w:close()
      return line
    end)
    local ctx = assert(socket.ssl.newcontext {mode = "server", protocol = "tlsv1_2",
      certificate = DIR .. "server.pem", key = DIR .. "server.key"})
    local conn = socket.ssl.wrap(srv:accept(), ctx)
    assert.is_true(conn:dohandshake())
    assert.are.equal("ping", conn:receive())
    conn:send("pong\n")
    assert.are.equal("pong\n", client:await())
    conn:close()
    srv:close()
  end))

  it("is what require \"ssl\" gives after install()", helper.async(function()
    socket.install()
    local got = require "ssl"
    socket.uninstall()
    assert.are.equal(socket.ssl, got)
    assert.are_not.equal(socket.ssl, package.loaded.ssl)
  end))

  it("checks its arguments", function()
    assert.truthy(helper.error_of(socket.ssl.wrap, {}, {}):find("bad argument #1 to 'wrap'", 1, true))
    local master = socket.tcp()
    assert.truthy(helper.error_of(socket.ssl.wrap, master, {}):find(
      "bad argument #1 to 'wrap' (connected lasync.socket tcp object expected", 1, true))
    master:close()
    assert.truthy(helper.error_of(socket.ssl.newcontext, {mode = "x"}):find("params.mode", 1, true))
  end)
end)

describe("lasync.socket.ssl with openssl(1) as the peer", function()
  it("talks to openssl s_server (-www) through LuaSec's calls", helper.async(function()
    local probe = assert(socket.bind("127.0.0.1", 0))
    local _, port = probe:getsockname()
    probe:close()  -- a free port
    local log = helper.scratch().tmp("s_server.out")
    os.execute(("timeout 10 openssl s_server -accept 127.0.0.1:%d -cert %s -key %s -www "
      .. "> %s 2>&1 & echo $! > %s.pid"):format(port, SERVER.certfile, SERVER.keyfile, log, log))
    local c
    for _ = 1, 500 do  -- until it listens (5 s at most)
      c = socket.connect("127.0.0.1", port)
      if c then break end
      socket.sleep(0.01)
    end
    assert.truthy(c, helper.read_file(log))
    local conn = socket.ssl.wrap(c, {mode = "client", verify = "peer", cafile = DIR .. "ca.pem"})
    conn:sni("localhost")
    assert.is_true(conn:dohandshake())
    conn:send("GET / HTTP/1.0\r\n\r\n")
    assert.are.equal("HTTP/1.0 200 ok", conn:receive("*l"))
    local rest = conn:receive("*a")
    assert.truthy(rest:find("s_server", 1, true))
    conn:close()
    os.execute(("kill $(cat %s.pid) 2>/dev/null"):format(log))
  end))
end)
