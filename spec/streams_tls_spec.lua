-- TLS streams (docs/reference.md §8: the `ssl` option, server_hostname, start_tls):
-- echo and reads over TLS, certificate checks, client certificates, ALPN,
-- handshake failures and timeouts, STARTTLS, interop with openssl(1).
-- The certificates are spec/fixtures/tls (make-certs.sh made them).
local lasync = require "lasync"
local helper = require "helper"
local util = require "streams_util"

local catch = helper.error_of
local DIR = debug.getinfo(1, "S").source:match("^@(.-)[^/]*$") .. "fixtures/tls/"
local CA = DIR .. "ca.pem"
local SERVER = {certfile = DIR .. "server.pem", keyfile = DIR .. "server.key"}
local CLIENT = {cafile = CA}

local function with(base, extra)
  local t = {}
  for k, v in pairs(base) do t[k] = v end
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

-- A TLS server on 127.0.0.1 for handler; returns it and its port.
local function tls_server(handler, settings, opts)
  return util.server(handler, with({ssl = settings or SERVER}, opts))
end

local function tls_connect(port, opts)
  return lasync.open_connection("127.0.0.1", port, with({ssl = CLIENT}, opts))
end

describe("a TLS connection", function()
  it("echoes 1 MiB intact, both ways checked by the client", helper.async(function()
    local srv, port = tls_server(util.echo)
    local r, w = tls_connect(port)
    local parts = {}
    for i = 1, 256 do parts[i] = string.char(i % 256):rep(4096) end
    local data = table.concat(parts)
    local reader = lasync.spawn(function() return r:readexactly(#data) end)
    w:write(data)
    w:drain()
    assert.are.equal(data, reader:await())
    w:close()
    util.stop(srv)
  end))

  it("serves small reads from a big record the socket will not signal again", helper.async(function()
    local data = ("0123456789"):rep(5000)
    local srv, port = tls_server(function(_, w) w:write(data) end)
    local r = tls_connect(port)
    local got = {}
    repeat
      local chunk = r:read(7)
      got[#got + 1] = chunk
      assert.is_true(#chunk <= 7)
    until chunk == ""
    assert.are.equal(data, table.concat(got))
    util.stop(srv)
  end))

  it("reads lines, exact sizes and separators", helper.async(function()
    local srv, port = tls_server(function(_, w)
      w:write("one\r\ntwo\nthree;abcdefrest")
    end)
    local r = tls_connect(port)
    assert.are.equal("one\r\n", r:readline())
    assert.are.equal("two\n", r:readline())
    assert.are.equal("three;", r:readuntil(";"))
    assert.are.equal("abc", r:readexactly(3))
    assert.are.equal("defrest", r:read())
    assert.is_true(r:at_eof())
    util.stop(srv)
  end))

  it("tells its TLS version, cipher and the peer's certificate", helper.async(function()
    local seen = lasync.Future()
    local srv, port = tls_server(function(_, w)
      seen:set_result({w:get_extra_info("cipher")})
    end)
    local _, w = tls_connect(port)
    assert.matches("^TLSv1%.[23]$", w:get_extra_info("tls_version"))
    local cert = w:get_extra_info("peercert")
    assert.are.equal("CN=localhost", cert.subject)
    assert.are.equal("CN=lasync test CA", cert.issuer)
    assert.matches("^%-%-%-%-%-BEGIN CERTIFICATE", cert.pem)
    local name, version, bits = table.unpack(seen:await())
    assert.are.equal("string", type(name))
    assert.matches("^TLSv", version)
    assert.is_true(bits >= 128)
    assert.is_nil(w:get_extra_info("peercert_of_nothing"))
    w:close()
    util.stop(srv)
  end))

  it("cannot write_eof (TLS has no half-close)", helper.async(function()
    local srv, port = tls_server(util.echo)
    local _, w = tls_connect(port)
    assert.is_false(w:can_write_eof())
    assert.matches("TLS connection cannot close one direction",
      tostring(catch(w.write_eof, w)))
    w:close()
    util.stop(srv)
  end))

  it("works over Unix sockets", helper.async(function()
    local path = helper.scratch().tmp("tls.sock")
    local srv = lasync.start_unix_server(util.echo, path, {ssl = SERVER})
    local r, w = lasync.open_unix_connection(path, {ssl = CLIENT, server_hostname = "localhost"})
    w:write("over unix\n")
    assert.are.equal("over unix\n", r:readline())
    w:close()
    util.stop(srv)
  end))

  it("can use one ssl_context for many connections", helper.async(function()
    local sctx = lasync.ssl_context(SERVER)
    local cctx = lasync.ssl_context(CLIENT)
    assert.matches("^<SSLContext ", tostring(cctx))
    local srv, port = tls_server(util.echo, sctx)
    for i = 1, 3 do
      local r, w = tls_connect(port, {ssl = cctx})
      w:write(i .. "\n")
      assert.are.equal(i .. "\n", r:readline())
      w:close()
    end
    util.stop(srv)
  end))
end)

describe("TLS backpressure", function()
  local CHUNK = ("b"):rep(1024 * 1024)

  it("bounds the memory of a handler that never reads", helper.async(function()
    local stop = lasync.Event()
    local srv, port = tls_server(function() stop:wait() end)
    local _, w = tls_connect(port)
    collectgarbage()
    local before, sent = util.rss(), 0
    pcall(lasync.timeout, 0.3, function()
      while sent < 64 * #CHUNK do
        w:write(CHUNK)
        sent = sent + #CHUNK
        w:drain()
      end
    end)
    collectgarbage()
    local grown = util.rss() - before
    stop:set()
    w:close()
    util.stop(srv)
    util.wait_dropped(w)
    assert.is_true(sent < 64 * #CHUNK, "the peer could send everything")
    assert.is_true(grown < 16 * #CHUNK, ("memory grew by %d bytes"):format(grown))
  end))

  it("resumes reading once the reader takes the input (records held by TLS included)", helper.async(function()
    local got = lasync.Future()
    local srv, port = tls_server(function(r)
      lasync.sleep(0.05)  -- the peer fills the buffer and the socket
      local n = 0
      repeat
        local data = r:read(1000)
        n = n + #data
      until data == ""
      got:set_result(n)
    end, nil, {limit = 4096})
    local _, w = tls_connect(port)
    for _ = 1, 8 do
      w:write(CHUNK)
      w:drain()
    end
    w:close()
    assert.are.equal(8 * #CHUNK, got:await())
    util.stop(srv)
  end))
end)

describe("TLS certificate checks", function()
  it("refuse a server the system's trusted CAs did not sign (ssl = true)", helper.async(function()
    local srv, port = tls_server(util.echo)
    local err = catch(lasync.open_connection, "127.0.0.1", port, {ssl = true})
    assert.is_true(lasync.SSLCertVerificationError:is(err), tostring(err))
    assert.is_true(lasync.SSLError:is(err))
    assert.is_true(lasync.OSError:is(err))
    assert.are.equal("certificate verify failed", err.reason)
    assert.are.equal("integer", math.type(err.verify_code))
    assert.matches("local issuer certificate", err.verify_message)
    util.stop(srv)
  end))

  it("refuse a certificate for another name", helper.async(function()
    local srv, port = tls_server(util.echo)
    local err = catch(tls_connect, port, {server_hostname = "example.com"})
    assert.is_true(lasync.SSLCertVerificationError:is(err), tostring(err))
    assert.are.equal("hostname mismatch", err.verify_message)
    util.stop(srv)
  end))

  it("check the name given as host, and accept the right one", helper.async(function()
    local srv, port = tls_server(util.echo)
    local r, w = lasync.open_connection("localhost", port, {ssl = CLIENT})
    w:write("by name\n")
    assert.are.equal("by name\n", r:readline())
    w:close()
    util.stop(srv)
  end))

  it("refuse a server signed by another CA", helper.async(function()
    local srv, port = tls_server(util.echo)
    local err = catch(tls_connect, port, {ssl = {cafile = DIR .. "other-ca.pem"}})
    assert.is_true(lasync.SSLCertVerificationError:is(err), tostring(err))
    util.stop(srv)
  end))

  it("are skipped with verify = false", helper.async(function()
    local srv, port = tls_server(util.echo)
    local r, w = tls_connect(port, {ssl = {verify = false}, server_hostname = "example.com"})
    w:write("unchecked\n")
    assert.are.equal("unchecked\n", r:readline())
    w:close()
    util.stop(srv)
  end))

  it("of clients: a server with verify = true wants a client certificate", helper.async(function()
    local reports = helper.reports()
    local subject = lasync.Future()
    local srv, port = tls_server(function(r, w)
      subject:set_result(w:get_extra_info("peercert").subject)
      w:write(r:readline())
    end, with(SERVER, {cafile = CA, verify = true}))
    -- without one: refused (TLS 1.3 tells the client on its first read)
    local err = catch(function()
      local r, w = tls_connect(port)
      w:write("no cert\n")
      return r:readline()
    end)
    assert.is_true(lasync.SSLError:is(err), tostring(err))
    -- with one: served
    local r, w = tls_connect(port, {ssl = with(CLIENT, {
      certfile = DIR .. "client.pem", keyfile = DIR .. "client.key"})})
    w:write("with cert\n")
    assert.are.equal("with cert\n", r:readline())
    assert.are.equal("CN=lasync test client", subject:await())
    w:close()
    util.stop(srv)
    assert.are.equal(0, #reports)
  end))
end)

describe("TLS ALPN", function()
  it("agrees on the server's first protocol the client offers", helper.async(function()
    local chosen = {}
    local srv, port = tls_server(function(r, w)
      chosen[#chosen + 1] = w:get_extra_info("alpn_protocol") or "none"
      r:read()
    end, with(SERVER, {alpn = {"h2", "http/1.1"}}))
    local _, w = tls_connect(port, {ssl = with(CLIENT, {alpn = {"http/1.1", "h2"}})})
    assert.are.equal("h2", w:get_extra_info("alpn_protocol"))
    w:close()
    local _, w2 = tls_connect(port, {ssl = with(CLIENT, {alpn = {"spdy/3"}})})
    assert.is_nil(w2:get_extra_info("alpn_protocol"))
    w2:close()
    util.stop(srv)
    assert.are.same({"h2", "none"}, chosen)
  end))
end)

describe("a TLS handshake that fails", function()
  it("costs that connection only, unreported, and the server goes on", helper.async(function()
    local reports = helper.reports()
    local handled = 0
    local srv, port = tls_server(function(r, w)
      handled = handled + 1
      w:write(r:readline())
    end)
    -- a client that speaks plain text to the TLS server: the server
    -- answers with an alert and closes (a reset, as it left input unread)
    local pr, pw = lasync.open_connection("127.0.0.1", port)
    pw:write("GET / HTTP/1.0\r\n\r\n")
    local ok = pcall(function() repeat until pr:read() == "" end)
    assert.is_true(pr:at_eof() or not ok)
    pw:close()
    -- a TLS client is served meanwhile and after
    local r, w = tls_connect(port)
    w:write("still serving\n")
    assert.are.equal("still serving\n", r:readline())
    w:close()
    util.stop(srv)
    assert.are.equal(1, handled)
    assert.are.equal(0, #reports)
  end))

  it("times out on the server: a silent client is dropped", helper.async(function()
    local srv, port = tls_server(util.echo, nil, {ssl_handshake_timeout = 0.1})
    local r, w = lasync.open_connection("127.0.0.1", port)
    -- before the spec's deadline (5 s), long before the default timeout (60 s)
    assert.are.equal("", r:read())
    w:close()
    util.stop(srv)
  end))

  it("times out on the client with ConnectionAbortedError", helper.async(function()
    local srv, port = util.server(function(r) r:read() end)  -- never answers
    local err = catch(tls_connect, port, {ssl_handshake_timeout = 0.1})
    assert.is_true(lasync.ConnectionAbortedError:is(err), tostring(err))
    assert.matches("SSL handshake is taking longer than 0.1", err.message)
    util.stop(srv)
  end))

  it("when the peer closes is ConnectionResetError", helper.async(function()
    local srv, port = util.server(function(r, w) r:read(1); w:close() end)
    local err = catch(tls_connect, port)
    assert.is_true(lasync.ConnectionResetError:is(err), tostring(err))
    util.stop(srv)
  end))

  it("is cancelled cleanly, and by close() from another task", helper.async(function()
    local srv, port = util.server(function(r) r:read() end)
    local _, w = lasync.open_connection("127.0.0.1", port)
    local t = lasync.spawn(function() w:start_tls(CLIENT, {server_hostname = "localhost"}) end)
    lasync.sleep(0.01)
    t:cancel()
    assert.is_true(helper.is_cancelled(catch(t.await, t)))
    assert.is_true(w:is_closing())
    local _, w2 = lasync.open_connection("127.0.0.1", port)
    local t2 = lasync.spawn(function() w2:start_tls(CLIENT, {server_hostname = "localhost"}) end)
    lasync.sleep(0.01)
    w2:close()
    local err = catch(t2.await, t2)
    assert.is_true(lasync.ConnectionAbortedError:is(err), tostring(err))
    util.stop(srv)
  end))
end)

describe("start_tls", function()
  it("upgrades a plain connection (STARTTLS), on both sides", helper.async(function()
    local srv, port = util.server(function(r, w)
      assert.are.equal("STARTTLS\n", r:readline())
      w:write("GO\n")
      w:start_tls(SERVER)
      w:write("secret: " .. r:readline())
    end)
    local r, w = lasync.open_connection("127.0.0.1", port)
    w:write("STARTTLS\n")
    assert.are.equal("GO\n", r:readline())
    assert.is_true(w:can_write_eof())
    w:start_tls(CLIENT, {server_hostname = "localhost"})
    assert.is_false(w:can_write_eof())
    w:write("hush\n")
    assert.are.equal("secret: hush\n", r:readline())
    assert.matches("^TLSv", w:get_extra_info("tls_version"))
    w:close()
    util.stop(srv)
  end))

  it("sends output written before it first, in clear", helper.async(function()
    local srv, port = util.server(function(r, w)
      assert.are.equal("plain\n", r:readline())
      w:start_tls(SERVER)
      w:write(r:readline())
    end)
    local r, w = lasync.open_connection("127.0.0.1", port)
    w:write("plain\n")
    w:start_tls(CLIENT, {server_hostname = "localhost"})
    w:write("tls\n")
    assert.are.equal("tls\n", r:readline())
    w:close()
    util.stop(srv)
  end))

  it("rejects bad arguments and states with clear errors", helper.async(function()
    local srv, port = tls_server(util.echo)
    local _, w = lasync.open_connection("127.0.0.1", port)
    assert.matches("start_tls: server_hostname is needed",
      tostring(catch(w.start_tls, w, CLIENT)))
    assert.matches("start_tls: ssl: true, a table of TLS settings or an SSL context expected, got number",
      tostring(catch(w.start_tls, w, 42)))
    assert.matches("opts.ssl_handshake_timeout must be a positive number",
      tostring(catch(w.start_tls, w, CLIENT, {ssl_handshake_timeout = -1})))
    w:start_tls(CLIENT, {server_hostname = "localhost"})
    assert.matches("start_tls: the stream uses TLS already",
      tostring(catch(w.start_tls, w, CLIENT, {server_hostname = "localhost"})))
    w:close()
    assert.matches("start_tls: the stream is closed",
      tostring(catch(w.start_tls, w, CLIENT)))
    util.stop(srv)
  end))
end)

describe("TLS settings", function()
  it("are checked, naming the argument", helper.async(function()
    local function msg(...) return tostring(catch(...)) end
    assert.matches("start_server: opts.ssl: a server needs a certificate %(certfile%)",
      msg(lasync.start_server, util.echo, "127.0.0.1", 0, {ssl = true}))
    assert.matches("start_server: opts.ssl: unknown TLS setting 'certfil'",
      msg(lasync.start_server, util.echo, "127.0.0.1", 0, {ssl = {certfil = "x"}}))
    -- a file that cannot be opened: errno's reason, not OpenSSL's "system lib"
    assert.matches("start_server: opts.ssl: cannot load certfile '/nonexistent.pem' %(No such file or directory%)",
      msg(lasync.start_server, util.echo, "127.0.0.1", 0, {ssl = {certfile = "/nonexistent.pem"}}))
    assert.matches("ssl_context: cannot load keyfile '.*client.key' %(key values mismatch%)",
      msg(lasync.ssl_context, {certfile = SERVER.certfile, keyfile = DIR .. "client.key"}))
    assert.matches("ssl_context: verify must be a boolean, got string",
      msg(lasync.ssl_context, {verify = "yes"}))
    assert.matches("ssl_context: alpn%[2%] must be a protocol name",
      msg(lasync.ssl_context, {alpn = {"h2", ""}}))
    assert.matches("ssl_context: min_version must be \"TLSv1.2\" or \"TLSv1.3\", got \"SSLv3\"",
      msg(lasync.ssl_context, {min_version = "SSLv3"}))
    assert.matches("ssl_context: cannot load cafile '/nonexistent' %(No such file or directory%)",
      msg(lasync.ssl_context, {cafile = "/nonexistent"}))
    assert.matches("open_connection: opts.ssl: cannot load cafile '/nope.pem' %(No such file or directory%)",
      msg(lasync.open_connection, "127.0.0.1", 1, {ssl = {cafile = "/nope.pem"}}))
    assert.matches("bad argument #1 to 'ssl_context' %(table of TLS settings expected, got boolean%)",
      msg(lasync.ssl_context, true))
    assert.matches("opts.server_hostname needs opts.ssl",
      msg(lasync.open_connection, "127.0.0.1", 1, {server_hostname = "x"}))
    assert.matches("unknown option 'server_hostname'",
      msg(lasync.start_server, util.echo, "127.0.0.1", 0, {ssl = SERVER, server_hostname = "x"}))
    assert.matches("opts.ssl_handshake_timeout must be a positive number, got 0",
      msg(lasync.open_connection, "127.0.0.1", 1, {ssl = true, ssl_handshake_timeout = 0}))
    assert.matches("opts.ssl_handshake_timeout needs opts.ssl",
      msg(lasync.open_connection, "127.0.0.1", 1, {ssl_handshake_timeout = 1}))
    assert.matches("opts.server_hostname must be a string, got number",
      msg(lasync.open_connection, "127.0.0.1", 1, {ssl = true, server_hostname = 1}))
    for _, bad in ipairs {"", ("a"):rep(254), "host\0name"} do
      assert.matches("opts.server_hostname must be a host name %(1 to 253 bytes, no \\0%)",
        msg(lasync.open_connection, "127.0.0.1", 1, {ssl = true, server_hostname = bad}))
    end
    local freed = lasync.ssl_context {}
    getmetatable(freed).__gc(freed)
    assert.matches("open_connection: opts.ssl: the SSL context is freed",
      msg(lasync.open_connection, "127.0.0.1", 1, {ssl = freed}))
    assert.matches("ssl_context: cafile must be a string, got number",
      msg(lasync.ssl_context, {cafile = 1}))
    assert.matches("ssl_context: alpn must be a list of strings, got string",
      msg(lasync.ssl_context, {alpn = "h2"}))
    assert.matches("ssl_context: keyfile given without certfile",
      msg(lasync.ssl_context, {keyfile = SERVER.keyfile}))
    assert.matches("ssl_context: no cipher matches 'NO%-SUCH%-CIPHER'",
      msg(lasync.ssl_context, {ciphers = "NO-SUCH-CIPHER"}))
  end))

  it("are checked by start_tls, with the stream's state", helper.async(function()
    local function msg(...) return tostring(catch(...)) end
    local hold = lasync.Event()
    local srv, port = util.server(function(r) r:read(); hold:wait() end)
    local r, w = lasync.open_connection("127.0.0.1", port)
    assert.matches("start_tls: opts.server_hostname must be a string, got number",
      msg(w.start_tls, w, CLIENT, {server_hostname = 1}))
    assert.matches("start_tls: opts: table of options or nil expected, got number",
      msg(w.start_tls, w, CLIENT, 1))
    assert.matches("opts.server_hostname must be a host name",
      msg(w.start_tls, w, CLIENT, {server_hostname = ("a"):rep(300)}))
    local reader = lasync.spawn(r.read, r, 1)
    lasync.sleep(0)
    assert.matches("start_tls: another task is reading or draining this stream",
      msg(w.start_tls, w, CLIENT, {server_hostname = "localhost"}))
    reader:cancel()
    pcall(reader.await, reader)
    -- a handshake the silent server never answers: writes wait for it
    local shaking = lasync.spawn(w.start_tls, w, CLIENT,
      {server_hostname = "localhost", ssl_handshake_timeout = 1})
    helper.settle()
    assert.matches("cannot write during the TLS handshake", msg(w.write, w, "x"))
    assert.is_true(lasync.ConnectionAbortedError:is(catch(shaking.await, shaking)))
    local _, w2 = lasync.open_connection("127.0.0.1", port)
    w2:write_eof()
    assert.matches("start_tls: write_eof%(%) was called",
      msg(w2.start_tls, w2, CLIENT, {server_hostname = "localhost"}))
    w2:close()
    hold:set()
    util.stop(srv)
  end))

  it("limit the protocol versions", helper.async(function()
    local srv, port = tls_server(util.echo, with(SERVER, {max_version = "TLSv1.2"}))
    local _, w = tls_connect(port)
    assert.are.equal("TLSv1.2", w:get_extra_info("tls_version"))
    w:close()
    local err = catch(tls_connect, port, {ssl = with(CLIENT, {min_version = "TLSv1.3"})})
    assert.is_true(lasync.SSLError:is(err), tostring(err))
    util.stop(srv)
  end))
end)

describe("TLS with openssl(1) as the peer", function()
  -- Polls until cond() is true, for up to 5 s.
  local function eventually(cond)
    for _ = 1, 500 do
      if cond() then return true end
      lasync.sleep(0.01)
    end
    return false
  end

  it("serves openssl s_client", helper.async(function()
    local srv, port = tls_server(function(r, w)
      w:write("lasync heard " .. r:readline())
    end)
    local out = helper.scratch().tmp("s_client.out")
    os.execute(("printf 'hello\\n' | timeout 5 openssl s_client -connect 127.0.0.1:%d "
      .. "-CAfile %s -verify_return_error -quiet > %s 2>&1 &"):format(port, CA, out))
    assert.is_true(eventually(function()
      local f = io.open(out)
      local text = f and f:read("a")
      if f then f:close() end
      return text and text:find("lasync heard hello", 1, true)
    end))
    util.stop(srv)
  end))

  it("connects to openssl s_server", helper.async(function()
    local probe, port = util.server(util.echo)
    util.stop(probe)  -- a free port
    local log = helper.scratch().tmp("s_server.out")
    os.execute(("timeout 10 openssl s_server -accept 127.0.0.1:%d -cert %s -key %s -www "
      .. "> %s 2>&1 & echo $! > %s.pid"):format(port, SERVER.certfile, SERVER.keyfile, log, log))
    local r, w
    assert.is_true(eventually(function()
      local ok, a, b = pcall(tls_connect, port)
      if ok then r, w = a, b end
      return ok
    end), helper.read_file(log))
    w:write("GET / HTTP/1.0\r\n\r\n")
    local page = r:read()
    assert.matches("^HTTP/1%.0 200 ok", page)
    w:close()
    os.execute(("kill $(cat %s.pid) 2>/dev/null"):format(log))
  end))
end)
