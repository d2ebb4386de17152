--- lasync.http: HTTP/1.1 over lasync streams (docs/reference.md §10).
-- The parser, the body framing and the serialising are lasync.core's
-- (src/http.c, core._http); this module runs the server: one task per
-- connection reads its requests one after another (pipelined requests are
-- so answered in order), calls the handler and writes its response. The
-- client is lasync.httpclient's, re-exported.
local lasync = require "lasync"
local core = require "lasync.core"
local checks = require "lasync.checks"
checks.internal()

local websocket = require "lasync.websocket"

local H = core._http
local next_request = H.next_request
local HTTPError, OSError, CancelledError =
  core.HTTPError, core.OSError, core.CancelledError
local pcall, xpcall, error, type, pairs, ipairs, setmetatable =
  pcall, xpcall, error, type, pairs, ipairs, setmetatable

---@class lasync.http
---@field request fun(method: string, url: string, opts?: table): lasync.http.Response (lasync.httpclient)
---@field get fun(url: string, opts?: table): lasync.http.Response
---@field post fun(url: string, body: string, opts?: table): lasync.http.Response
---@field websocket_connect fun(url: string, opts?: table): lasync.WebSocket (lasync.websocket.connect)
local M = {}

-- ---------------------------------------------------------------- options --

local POSITIVE = checks.option("number", "a positive number", function(v) return v > 0 end)

local SERVE_OPTS = {host = checks.ANY, port = checks.ANY, ssl = checks.ANY,
  backlog = checks.ANY, reuse_port = checks.ANY, max_body_size = checks.count(),
  max_headers_size = checks.count(), timeout = POSITIVE}

local DEFAULTS = {max_body_size = 1024 * 1024, max_headers_size = 16 * 1024, timeout = 60}

-- How long and how much of an unwanted request body is read and dropped
-- after an error response, before the connection closes: closing with
-- unread input makes the kernel reset it, and the client could lose the
-- response (a lingering close, as nginx does).
local LINGER_TIME, LINGER_BYTES = 2, 1024 * 1024

-- ---------------------------------------------------------------- service --

-- A service holds what every connection of one or more listening servers
-- shares: the handler, the limits, the open connections and whether it
-- is closing. A connection is {stream=, service=, task=, idle=, parked=,
-- req=}:
-- req, the request being answered (core._http's Message: its head, and
-- req.conn, req.peer and req.body from the connection), and while a
-- response streams its state (started, chunked, keep, finished, status,
-- bytes); ws, the WebSocket it became (then only started and status).
-- What an idle connection holds is kept small: 10,000 of them, and of
-- WebSockets, are benchmarks (bench/README.md).

---@class lasync.http.Request
---@field method string
---@field path string
---@field query string
---@field version string
---@field headers lasync.http.Headers
---@field body string
---@field peer {host: string, port: integer}
local Request = {}

-- The connection whose response req's method fname acts on: only the
-- request being answered has one.
local function response_of(req, fname)
  local conn = req.conn
  if type(conn) ~= "table" or conn.req ~= req then
    checks.misuse(("bad self to '%s' (a request of lasync.http expected, "
      .. "while its handler runs)"):format(fname))
  end
  if conn.ws then checks.misuse(fname .. ": the connection is a WebSocket now") end
  return conn
end

--- req:start_response(status, headers): sends the head of a streamed
--- response; its body follows with req:write(), chunked unless headers
--- has Content-Length.
---@param status integer
---@param headers? table
function Request:start_response(status, headers)
  local conn = response_of(self, "start_response")
  checks.integer(status, 1, "start_response", 100, 999, "status (integer from 100 to 999)")
  checks.check(headers == nil or type(headers) == "table", headers, 2, "start_response",
    "table of headers or nil")
  if conn.started then checks.misuse("start_response: the response has already started") end
  conn.chunked, conn.keep = H.write_head(conn.stream, self, status, conn.service:headers(headers))
  conn.started, conn.status, conn.bytes = true, status, 0
end

--- req:write(data): sends a piece of the streamed body; suspends while
--- the peer does not read it (backpressure).
---@param data string
function Request:write(data)
  local conn = response_of(self, "write")
  checks.check(type(data) == "string", data, 1, "write", "string")
  if not conn.started then checks.misuse("write: start_response first") end
  if conn.finished then checks.misuse("write: the response is finished") end
  if self.method == "HEAD" then return end
  if conn.chunked then H.write_chunk(conn.stream, data) else conn.stream:write(data) end
  conn.bytes = conn.bytes + #data
  conn.stream:drain()
end

--- req:finish(): ends the streamed response (the last chunk).
function Request:finish()
  local conn = response_of(self, "finish")
  if not conn.started then checks.misuse("finish: start_response first") end
  if conn.finished then return end
  conn.finished = true
  if conn.chunked and self.method ~= "HEAD" then H.write_chunk(conn.stream, nil) end
  conn.stream:drain()
end

H.set_methods(Request)

local Service = {}
Service.__index = Service

--- headers, with Connection: close while the service is closing, so that
--- the connection of a request in flight ends after it. Never changes the
--- handler's table.
---@param headers table
function Service:headers(headers)
  if not self.closing then return headers end
  local copy = {}
  for k, v in pairs(headers or {}) do copy[k] = v end
  copy.Connection = "close"
  return copy
end

-- An error response that ends the connection: written, then the rest of
-- the input dropped for a bounded time (see LINGER_TIME). Returns false
-- and the status, as Service:read_body does.
local function refuse(conn, status, req)
  local s = conn.stream
  H.write_response(s, req, status, {Connection = "close"}, "")
  s:drain()
  if s:can_write_eof() then s:write_eof() end
  pcall(lasync.timeout, LINGER_TIME, function()
    local got = 0
    repeat
      local data = s:read(65536)
      got = got + #data
    until data == "" or got > LINGER_BYTES
  end)
  return false, status
end

--- Reads req.body (after a 100 Continue if asked for), within the
--- timeout: true; or false and the status of the error response sent
--- (413, 408, 400), when the connection is to end.
---@param conn any
---@param req lasync.http.Request
function Service:read_body(conn, req)
  if (req.body_length or 0) > self.max_body_size then return refuse(conn, 413, req) end
  if req.expect_continue then H.continue(conn.stream) end
  local ok, body = pcall(H.read_body, conn.stream, req, self.max_body_size, nil, self.timeout)
  if ok and body then
    req.body = body
    return true
  end
  if ok then return refuse(conn, 408, req) end
  if HTTPError:is(body) and body.status then return refuse(conn, body.status, req) end
  error(body, 0)
end

-- xpcall's message handler: the error and its traceback.
local function traced(e)
  return {e, debug.traceback(checks.errtext(e), 2)}
end

--- The handler failed with err (a {error, traceback} pair): a 500 when no
--- response has started, else the connection is aborted; reported to the
--- loop's exception handler unless the peer caused it (a reset). An
--- HTTPError with a status (lasync.http.websocket's 400) is that response,
--- with its headers, and no report. Returns as Service:respond.
---@param conn any
---@param req lasync.http.Request
---@param err any
function Service:failed(conn, req, err)
  local e = err[1]
  if CancelledError:is(e) then error(e, 0) end
  if OSError:is(e) and conn.started then return false, conn.status, conn.bytes end
  if HTTPError:is(e) and math.type(e.status) == "integer" and not conn.started then
    return H.write_response(conn.stream, req, e.status, self:headers(e.headers), ""), e.status, 0
  end
  lasync.get_running_loop():call_exception_handler {
    message = "Unhandled error in HTTP handler", exception = e,
    traceback = err[2], task = lasync.current_task()}
  if conn.started then return false, conn.status, conn.bytes end
  return H.write_response(conn.stream, req, 500, self:headers(), ""), 500, 0
end

-- Writes the response the handler returned (finishes the one it
-- streamed): whether the connection stays open, the status and the bytes
-- of body sent.
local function reply(service, conn, req, status, body, headers)
  if conn.started then
    req:finish()
    return conn.keep, conn.status, conn.bytes
  end
  if math.type(status) ~= "integer" or body ~= nil and type(body) ~= "string"
      or headers ~= nil and type(headers) ~= "table" then
    error(("HTTP handler returned %s, %s, %s: status (integer), body (string or nil) "
      .. "and headers (table or nil) expected"):format(checks.typename(status),
      checks.typename(body), checks.typename(headers)), 0)
  end
  local keep, bytes = H.write_response(conn.stream, req, status, service:headers(headers), body)
  return keep, status, bytes
end

--- After the handler: ok and its results as xpcall gave them. Closes its
--- WebSocket, writes its response (or the failure's, see failed): as reply.
---@param conn any
---@param req lasync.http.Request
---@param ok any
---@param a any
---@param b any
---@param c any
function Service:respond(conn, req, ok, a, b, c)
  local ws = conn.ws
  if ws then  -- its closing handshake closes the stream
    conn.ws = nil
    websocket.done(ws, not ok)
    if ok then return false, 101, 0 end
  end
  if ok then a, b, c = reply(self, conn, req, a, b, c) else a, b, c = self:failed(conn, req, a) end
  if not ws then conn.stream:drain() end
  return a, b, c
end

--- A request answered (or refused): logged, when there is a log, and its
--- state dropped from the connection.
---@param conn any
---@param req lasync.http.Request
---@param status integer
---@param bytes any
function Service:answered(conn, req, status, bytes)
  conn.req = nil  -- its methods are done with it: no longer kept while idle
  if conn.started then
    conn.started, conn.finished, conn.chunked = nil, nil, nil
    conn.keep, conn.status, conn.bytes = nil, nil, nil
  end
  if self.log then self.log(req, status, bytes or 0, lasync.time() - conn.t0) end
end

-- fn(...)'s results, or nil when it raised an OSError: the peer failed
-- the connection (a reset, a broken pipe), which then ends quietly.
local function guard(fn, ...)
  local ok, a, b, c = pcall(fn, ...)
  if ok then return a, b, c end
  if OSError:is(a) then return nil end
  error(a, 0)
end

--- Service:respond raised err (a {error, traceback} pair) after the
--- handler, ok its xpcall's status: as guard. A response the handler gave
--- that cannot be written (a bad status, body or header) is then the
--- handler's failure, answered as any other.
---@param conn any
---@param req lasync.http.Request
---@param ok any
---@param err any
function Service:respond_failed(conn, req, ok, err)
  if OSError:is(err[1]) then return nil end
  if not ok or CancelledError:is(err[1]) then error(err[1], 0) end
  return guard(self.respond, self, conn, req, false, err)
end

-- How long a kept-alive connection waits for its next request in its
-- task; then it parks without one (core._server_park: the server's C code keeps
-- it, and a new task resumes it when input comes), so that an idle
-- connection holds no coroutine.
local LINGER = 0.1
local PARK = core._server_park

-- A connection leaves its service's list however it ends, not when it
-- parks.
local ConnMT = {__close = function(conn)
  if not conn.parked then conn.service.conns[conn] = nil end
end}

-- Serves the requests of connection conn until it ends: at EOF, idle
-- past the timeout (timedout: while parked), after an error response (408
-- for a head begun but not whole in time, 400, 431, 501, 505 for a bad
-- one), or when the peer fails it (a reset, a broken pipe: quietly); or
-- until it parks: returns PARK and how to resume it.
local function resume(conn, timedout)
  local _ <close> = conn
  conn.parked = nil
  if timedout then return end
  local self, stream = conn.service, conn.stream
  local max, timeout, req, status = self.max_headers_size, self.timeout
  conn.task = lasync.current_task()
  repeat
    if self.closing then return end
    conn.idle = true
    req, status = next_request(stream, max, timeout, conn, LINGER)
    conn.idle = false
    if req == true then
      conn.parked, conn.task = true, nil
      return PARK, resume, conn, status
    end
    if not req then break end
    conn.req = req
    if self.log then
      local _ = req.peer  -- made now, while connected, for the log after
      conn.t0 = lasync.time()
    end
    local keep, code, bytes = true, nil, nil
    if not req.body then  -- a body to read (none: req.body is "")
      keep, code, bytes = guard(self.read_body, self, conn, req)
      if keep == nil then return end
    end
    if keep then
      -- called from this frame: a handler that waits for long (a
      -- WebSocket's) keeps no more stack than it needs (bench/README.md)
      local ok, a, b, c = xpcall(self.app, traced, req)
      local done
      done, keep, code, bytes = xpcall(self.respond, traced, self, conn, req, ok, a, b, c)
      if not done then keep, code, bytes = self:respond_failed(conn, req, ok, keep) end
      if keep == nil then return end
    end
    self:answered(conn, req, code, bytes)
  until not keep or self.closing
  if status then pcall(refuse, conn, status) end
end

--- The connection handler: a new connection's requests.
---@param stream lasync.Stream
function Service:connection(stream)
  local conn = setmetatable({stream = stream, service = self, idle = false}, ConnMT)
  self.conns[conn] = true
  return resume(conn, false)
end

--- Stops serving: the idle keep-alive connections close at once, those
--- with a request in flight once it is answered, WebSockets get close 1001.
function Service:close()
  self.closing = true
  for conn in pairs(self.conns) do
    if conn.parked then conn.stream:close()
    elseif conn.idle then conn.task:cancel()
    elseif conn.ws then websocket.going_away(conn.ws) end
  end
end

--- A service for stream servers: `service.handler` is the connection
-- handler (function(reader, writer)) to give them; `service:close()` as
-- above. opts: max_body_size, max_headers_size, timeout (as serve's);
-- log, a function(req, status, bytes, seconds) called after each response
-- (lasync serve's access log).
function M._service(app, opts)
  local self = setmetatable({app = app, conns = {}, closing = false, log = opts.log,
    max_body_size = opts.max_body_size or DEFAULTS.max_body_size,
    max_headers_size = opts.max_headers_size or DEFAULTS.max_headers_size,
    timeout = opts.timeout or DEFAULTS.timeout}, Service)
  ---@param stream lasync.Stream
  function self.handler(stream) return self:connection(stream) end
  return self
end

-- ----------------------------------------------------------------- server --

-- The Server of serve: the stream server's, whose close() also ends the
-- idle keep-alive connections (and so does serve_forever() cancelled).
local Server = {}
local ServerMT = {__index = Server, __name = "lasync.HttpServer"}

for _, name in ipairs {"wait_closed", "is_serving", "sockname", "socknames",
                       "close_clients", "abort_clients", "set_max_connections"} do
  Server[name] = function(self, ...)
    local srv = self.server
    return srv[name](srv, ...)
  end
end

--- Stops accepting and closes the idle keep-alive connections.
function Server:close()
  self.server:close()
  self.service:close()
end

ServerMT.__close = Server.close

--- Serves until closed (then the connections drain).
function Server:serve_forever()
  local ok, err = pcall(self.server.serve_forever, self.server)
  if not self.server:is_serving() then self.service:close() end
  if not ok then error(err, 0) end
end

--- Serves HTTP: handler(req) for each request (see the module's doc).
--- opts: host (nil: every interface), port (nil or 0: a free one), ssl,
--- backlog, reuse_port (as start_server's), max_body_size (default 1 MiB),
--- max_headers_size (16 KiB), timeout (60 s). Returns the Server.
---@param handler fun(req: lasync.http.Request): integer?, string?, table?
---@param opts? table
---@return lasync.Server
function M.serve(handler, opts)
  checks.callable(handler, 1, "serve", "handler function")
  opts = checks.options(opts, 2, "serve", SERVE_OPTS)
  local service = M._service(handler, opts)
  local server = lasync.start_server(service.handler, opts.host, opts.port,
    {ssl = opts.ssl, backlog = opts.backlog, reuse_port = opts.reuse_port})
  return setmetatable({server = server, service = service}, ServerMT)
end

-- --------------------------------------------------------------- websocket --

--- lasync.http.websocket(req, opts) -> ws: answers req, a WebSocket
--- handshake, with 101 and turns its connection into the ws (which closes
--- when the handler returns). opts: max_message_size (1 MiB), protocols
--- (the subprotocols served, the client's first choice among them wins),
--- close_timeout (5 s: how long a closing handshake waits for the peer).
--- HTTPError with status 400 (426 for another version) otherwise.
---@param req lasync.http.Request
---@param opts? table
---@return lasync.WebSocket
function M.websocket(req, opts)
  local conn = response_of(req, "websocket")
  opts = checks.options(opts, 2, "websocket", websocket.SERVER_OPTS)
  if conn.started then checks.misuse("websocket: the response has already started") end
  local headers, protocol = websocket.accept(req, opts)
  H.write_head(conn.stream, req, 101, headers)
  -- few fields: a WebSocket keeps its connection's table for long
  conn.started, conn.status = true, 101
  conn.ws = websocket.new(conn.stream, true, opts, protocol)
  if conn.service.closing then websocket.going_away(conn.ws) end
  return conn.ws
end

-- The clients: lasync.httpclient (request, get, post), lasync.websocket.
local client = require "lasync.httpclient"
M.request, M.get, M.post = client.request, client.get, client.post
M.websocket_connect = websocket.connect

return M
