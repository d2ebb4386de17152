--- start_server on sockets that listen already (the internal _listen_fds
-- option, core._fd_server): how `lasync serve`'s workers serve their
-- master's sockets (core.sys.listen_socket). The server serves copies:
-- closing it leaves the socket listening for the others. TLS and the
-- limits on each connection work as on a socket of its own.
local lasync = require "lasync"
local core = require "lasync.core"
local helper = require "helper"
local util = require "streams_util"

local DIR = debug.getinfo(1, "S").source:match("^@(.-)[^/]*$") .. "fixtures/tls/"
local SERVER_TLS = {certfile = DIR .. "server.pem", keyfile = DIR .. "server.key"}

local function hello(_, w)
  w:write("hi\n")
end

-- The first line a new connection to port gets (over TLS with ssl).
local function first_line(port, ssl)
  local r, w = lasync.open_connection("127.0.0.1", port, {ssl = ssl})
  local line = r:readline()
  w:close()
  return line
end

describe("start_server with _listen_fds", function()
  it("serves a listening socket through a copy that close() closes alone",
     helper.async(function()
    local host, port, fd = core.sys.listen_socket("127.0.0.1", 0, 16)
    assert.equal("127.0.0.1", host)
    local a = lasync.start_server(hello, nil, nil, {_listen_fds = {fd}})
    assert.same({{host = "127.0.0.1", port = port}}, a:socknames())
    assert.equal("hi\n", first_line(port))
    a:close()
    a:wait_closed()
    -- the socket still listens: a second server of it serves
    local b = lasync.start_server(function(_, w) w:write("b\n") end, nil, nil, {_listen_fds = {fd}})
    assert.equal("b\n", first_line(port))
    b:close()
    b:wait_closed()
    core.sys.fd_close(fd)
  end))

  it("keeps TLS and the limits of each connection", helper.async(function()
    local _, port, fd = core.sys.listen_socket("127.0.0.1", 0, 16)
    local timed_out = lasync.Event()
    local srv = lasync.start_server(function(r, w)
      w:write("hi\n")
      local ok, err = pcall(r.readline, r)
      if not ok and lasync.TimeoutError:is(err) then timed_out:set() end
    end, nil, nil, {_listen_fds = {fd}, ssl = SERVER_TLS, read_timeout = 0.05})
    local r, w = lasync.open_connection("127.0.0.1", port, {ssl = {cafile = DIR .. "ca.pem"}})
    assert.equal("hi\n", r:readline())
    lasync.wait_for(function() timed_out:wait() end, 5)
    w:close()
    util.stop(srv)
    core.sys.fd_close(fd)
  end))

  it("raises on what is not a list of descriptors", helper.async(function()
    local function msg(fds)
      return tostring(helper.error_of(lasync.start_server, hello, nil, nil, {_listen_fds = fds}))
    end
    assert.matches("opts._listen_fds must be a list of descriptors", msg("3"))
    assert.matches("1 to 8 descriptors expected", msg({}))
    assert.matches("a list of file descriptors expected", msg({"x"}))
    assert.matches("dup", msg({1 << 29}))
  end))
end)
