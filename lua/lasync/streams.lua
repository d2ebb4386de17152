--- lasync.streams: TCP and Unix streams (docs/reference.md §8): open_connection,
-- open_unix_connection, start_server and start_unix_server. The streams
-- and servers are lasync.core's (src/stream.c, src/server.c); this module
-- checks the arguments and turns host names into addresses.
-- A connection is one Stream object, returned twice (as the reader and as
-- the writer) and passed twice to a server's handler.
-- TLS: the `ssl` option (true, a settings table or an ssl_context) makes
-- the connection run start_tls once connected (src/tls.c).
local core = require "lasync.core"

local ipairs, pairs, pcall, error, type = ipairs, pairs, pcall, error, type
local OSError = core.OSError

---@class lasync.streams
local M = {}

-- ---------------------------------------------------------------- checks --

local checks = require "lasync.checks"
checks.internal()
local argerror = checks.argerror

-- opts.local_addr: {host, port}.
local LOCAL_ADDR = checks.option("table", "{host, port}", function(v)
  return type(v[1]) == "string" and math.type(v[2]) == "integer"
end)

-- The TLS options, which every function takes: tls_opts and the C core
-- check them.
local TLS = {ssl = checks.ANY, server_hostname = checks.ANY,
             ssl_handshake_timeout = checks.ANY}

local function with_tls(known)
  for k, v in pairs(TLS) do known[k] = v end
  return known
end

local LIMIT, BACKLOG = checks.count(), checks.count(65535)
local MAX = checks.SERVER_LIMITS_MAX
local SECONDS = checks.option("number",
  ("a positive number of seconds (at most %d)"):format(MAX.read_timeout),
  function(v) return v > 0 and v <= MAX.read_timeout end)
local CONNECT_OPTS = with_tls {limit = LIMIT, local_addr = LOCAL_ADDR}
local UNIX_CONNECT_OPTS = with_tls {limit = LIMIT}

-- A server's limits on each connection: read_timeout, write_timeout,
-- max_buffer (src/stream.c's StreamLimits).
local function with_limits(known)
  known.read_timeout, known.write_timeout = SECONDS, SECONDS
  known.max_buffer = checks.count(MAX.max_buffer)
  return known
end
-- _listen_fds: internal, for lasync.serve's workers (core._fd_server).
local SERVER_OPTS = with_limits(with_tls {limit = LIMIT, backlog = BACKLOG,
                             reuse_address = checks.BOOLEAN, reuse_port = checks.BOOLEAN,
                             _listen_fds = checks.option("table", "a list of descriptors")})
local UNIX_SERVER_OPTS = with_limits(with_tls {limit = LIMIT, backlog = BACKLOG})

-- The server srv with the limits of opts, if any.
local function set_limits(srv, opts)
  if opts.read_timeout or opts.write_timeout or opts.max_buffer then
    core._server_set_limits(srv, opts.read_timeout, opts.write_timeout, opts.max_buffer)
  end
  return srv
end

local function check_string(v, n, fname, what)
  checks.check(type(v) == "string", v, n, fname, what)
end

local function check_port(v, n, fname)
  return checks.integer(v, n, fname, 0, 65535, "port (integer from 0 to 65535)")
end

-- A host name or address (argument n): a string without "\0".
local function check_host(v, n, fname, what)
  check_string(v, n, fname, what)
  if v:find("\0", 1, true) then argerror(n, fname, "host must not contain \\0") end
end

-- The TLS options: the context of opts.ssl (nil without TLS), and the
-- options of start_tls, which the core checks with the context.
-- server_hostname goes to clients only.
local function tls_opts(opts, n, fname, server)
  if not opts.ssl then
    for _, k in ipairs {"server_hostname", "ssl_handshake_timeout"} do
      if opts[k] ~= nil then argerror(n, fname, "opts." .. k .. " needs opts.ssl") end
    end
    return nil
  end
  if server and opts.server_hostname ~= nil then
    argerror(n, fname, "unknown option 'server_hostname'")
  end
  local ctx = core.tls_context(opts.ssl, fname .. ": opts.ssl", server, opts, fname .. ": opts")
  return ctx, {server_hostname = opts.server_hostname,
               ssl_handshake_timeout = opts.ssl_handshake_timeout}
end

--- A reusable TLS context made from a settings table (see README):
--- verify, cafile, capath, certfile, keyfile, alpn, ciphers, min_version,
--- max_version. Pass it as the `ssl` option or to start_tls.
---@param settings table
---@return lasync.SSLContext
function M.ssl_context(settings)
  checks.check(type(settings) == "table", settings, 1, "ssl_context", "table of TLS settings")
  return core.tls_context(settings, "ssl_context")
end

-- A server's handler behind the TLS handshake. A handshake that fails
-- costs that connection only, unreported: it is the peer's doing (asyncio
-- logs it in debug mode only).
local function tls_handler(handler, ctx, topts)
  return function(reader, writer)
    local ok, err = pcall(writer.start_tls, writer, ctx, topts)
    if not ok then
      if not OSError:is(err) then error(err, 0) end
      return
    end
    return handler(reader, writer)
  end
end

-- ------------------------------------------------------------- addresses --

-- The addresses of host:port, through lasync.getaddrinfo (numeric hosts and
-- /etc/hosts answer without suspending; other names ask the resolver).
local function resolve(host, port)
  return core.getaddrinfo(host, port)
end

-- ----------------------------------------------------------- connections --

--- Connects to host:port (each address in turn) and returns the
--- connection as reader and writer.
--- opts: limit (input buffered before reading pauses, default 65536),
--- local_addr ({host, port} to bind first), ssl (TLS: true, settings or an
--- ssl_context), server_hostname (the name the certificate must be for;
--- default host), ssl_handshake_timeout (seconds, default 60).
--- Raises an OSError (ConnectionRefusedError, ...) with `code` when no
--- address can be reached: that of the first address.
---@param host string
---@param port integer|string
---@param opts? table
---@return lasync.StreamReader reader
---@return lasync.StreamWriter writer
function M.open_connection(host, port, opts)
  if host == "" then argerror(1, "open_connection", "host must not be empty") end
  check_host(host, 1, "open_connection", "host (string)")
  port = check_port(port, 2, "open_connection")
  opts = checks.options(opts, 3, "open_connection", CONNECT_OPTS)
  local ctx, topts = tls_opts(opts, 3, "open_connection", false)
  checks.task("open_connection")
  local la, first = opts.local_addr or {}, nil
  for _, a in ipairs(resolve(host, port)) do
    local ok, s = pcall(core.tcp_connect, a.host, a.port, opts.limit, la[1], la[2])
    if ok then
      if ctx then
        topts.server_hostname = topts.server_hostname or host
        s:start_tls(ctx, topts)
      end
      return s, s
    end
    if not OSError:is(s) or core.CancelledError:is(s) then error(s, 0) end
    first = first or s
  end
  error(first, 0)
end

--- Connects to the Unix socket at path; returns reader and writer.
--- opts: limit, ssl, server_hostname (needed to verify the server),
--- ssl_handshake_timeout.
---@param path string
---@param opts? table
---@return lasync.StreamReader reader
---@return lasync.StreamWriter writer
function M.open_unix_connection(path, opts)
  check_string(path, 1, "open_unix_connection", "path (string)")
  opts = checks.options(opts, 2, "open_unix_connection", UNIX_CONNECT_OPTS)
  local ctx, topts = tls_opts(opts, 2, "open_unix_connection", false)
  local s = core.unix_connect(path, opts.limit)
  if ctx then s:start_tls(ctx, topts) end
  return s, s
end

-- --------------------------------------------------------------- servers --

local LISTEN_MAX = core.LISTEN_MAX  -- sockets per server

-- The numeric hosts to listen on for host: nil or "" every interface,
-- IPv4 and IPv6 (any: IPv6 is left out where the system lacks it); a name
-- or an address, or a list of them, each of their addresses.
local function listen_hosts(host, port)
  if host == nil or host == "" then return {"0.0.0.0", "::"}, true end
  local hosts, seen = {}, {}
  for _, h in ipairs(type(host) == "table" and host or {host}) do
    for _, a in ipairs(resolve(h, port)) do
      if not seen[a.host] then
        seen[a.host] = true
        hosts[#hosts + 1] = a.host
      end
    end
  end
  if #hosts > LISTEN_MAX then
    argerror(2, "start_server", ("more than %d addresses to listen on"):format(LISTEN_MAX))
  end
  return hosts, false
end

-- host: nil, a string or a non-empty list of strings.
local function check_listen_host(host)
  if type(host) ~= "table" then
    if host ~= nil then check_host(host, 2, "start_server", "host (string, list or nil)") end
    return
  end
  if host[1] == nil then argerror(2, "start_server", "host list must not be empty") end
  for _, h in ipairs(host) do
    check_host(h, 2, "start_server", "list of host strings")
    if h == "" then argerror(2, "start_server", "a host in the list is empty") end
  end
end

--- Listens on host:port (host nil or "": every interface, IPv4 and IPv6;
--- a name: each of its addresses; a list of names and addresses: each of
--- theirs, at most 8 in all; port 0 or nil: a free port, the same for every
--- address) and runs handler(reader, writer) in a new task for each
--- connection; the connection is closed when the handler returns or fails,
--- and a failure is reported to the loop's exception handler.
--- opts: limit, backlog (default 100), reuse_address (default true),
--- reuse_port, ssl (settings with certfile, or an ssl_context: each
--- connection does the TLS handshake before the handler runs),
--- ssl_handshake_timeout; limits on each connection: read_timeout (seconds
--- one read call may take), write_timeout (seconds unsent output may wait
--- without a byte leaving), max_buffer (bytes of unsent output): past one,
--- the connection fails and the call raises TimeoutError or, for
--- max_buffer, OSError ENOBUFS. Returns the Server, serving.
---@param handler fun(reader: lasync.StreamReader, writer: lasync.StreamWriter)
---@param host string|string[]|nil
---@param port? integer
---@param opts? table
---@return lasync.Server
function M.start_server(handler, host, port, opts)
  checks.callable(handler, 1, "start_server", "handler function")
  check_listen_host(host)
  port = port == nil and 0 or check_port(port, 3, "start_server")
  opts = checks.options(opts, 4, "start_server", SERVER_OPTS)
  local ctx, topts = tls_opts(opts, 4, "start_server", true)
  if ctx then handler = tls_handler(handler, ctx, topts) end
  if opts._listen_fds then
    return set_limits(core._fd_server(handler, opts._listen_fds, opts.limit), opts)
  end
  local hosts, any = listen_hosts(host, port)
  for tries = 1, 5 do
    local ok, srv = pcall(core.tcp_server, handler, hosts, port, opts.limit,
      opts.backlog, opts.reuse_address, opts.reuse_port, any)
    if ok then return set_limits(srv, opts) end
    -- port 0: the free port of the first address may be taken for another
    local again = port == 0 and #hosts > 1 and OSError:is(srv) and srv.code == "EADDRINUSE"
    if not again or tries == 5 then error(srv, 0) end
  end
end

--- Listens on the Unix socket path (a stale socket file there is
--- replaced; the file is removed when the server closes).
--- opts: limit, backlog, ssl, ssl_handshake_timeout, read_timeout,
--- write_timeout, max_buffer (as start_server's). Returns the Server,
--- serving.
---@param handler fun(reader: lasync.StreamReader, writer: lasync.StreamWriter)
---@param path string
---@param opts? table
---@return lasync.Server
function M.start_unix_server(handler, path, opts)
  checks.callable(handler, 1, "start_unix_server", "handler function")
  check_string(path, 2, "start_unix_server", "path (string)")
  opts = checks.options(opts, 3, "start_unix_server", UNIX_SERVER_OPTS)
  local ctx, topts = tls_opts(opts, 3, "start_unix_server", true)
  if ctx then handler = tls_handler(handler, ctx, topts) end
  return set_limits(core.unix_server(handler, path, opts.limit, opts.backlog), opts)
end

return M
