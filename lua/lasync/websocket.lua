--- lasync.websocket: WebSocket (RFC 6455) connections, the `ws` objects
-- of lasync.http.websocket and lasync.http.websocket_connect
-- (docs/reference.md §10). Framing, masking, reassembly, UTF-8 checks and
-- the answers to pings are lasync.core's (src/websocket.c, core._ws);
-- this module adds the handshakes and the closing handshake.
--
-- A ws has no task of its own: its input is read by whoever calls
-- ws:receive(), so an idle WebSocket costs its stream and this table.
local core = require "lasync.core"
local combinators = require "lasync.combinators"
local client = require "lasync.httpclient"
local checks = require "lasync.checks"
checks.internal()

local W = core._ws
local receive, send, receiving = W.receive, W.send, W.receiving
local HTTPError, ConnectionError = core.HTTPError, core.ConnectionError
local type, error, pcall, pairs, ipairs, setmetatable, getmetatable =
  type, error, pcall, pairs, ipairs, setmetatable, getmetatable

local M = {}

local DEFAULT_MAX = 1024 * 1024
-- How long the closing handshake waits for the peer's close frame
-- (websockets' close_timeout) unless told; then the connection is closed
-- anyway.
local CLOSE_TIMEOUT = 5

local PROTOCOLS = checks.option("table", "a list of strings", function(v)
  for i = 1, #v do
    if type(v[i]) ~= "string" or not v[i]:match("^[%w!#$%%&'*+.^_`|~-]+$") then return false end
  end
  return true
end)
local POSITIVE = checks.option("number", "a positive number", function(v) return v > 0 end)
M.SERVER_OPTS = {max_message_size = checks.count(), protocols = PROTOCOLS,
  close_timeout = POSITIVE}
local CONNECT_OPTS = {max_message_size = checks.count(), protocols = PROTOCOLS,
  close_timeout = POSITIVE,
  headers = checks.option("table", "a table of header names to strings or lists"),
  timeout = POSITIVE, ssl = checks.ANY}

-- --------------------------------------------------------------- the ws --

---@class lasync.WebSocket
---@field protocol string|nil the subprotocol agreed on
local WebSocket = {}
local WSMT = {__index = WebSocket, __name = "lasync.WebSocket"}

--- A ws over stream s: server (input comes masked, output goes plain) or
--- client; protocol, the subprotocol agreed on (or nil); opts as
--- websocket's (max_message_size, close_timeout).
---@param s lasync.Stream
---@param server boolean
---@param opts table
---@param protocol? string
---@return lasync.WebSocket
function M.new(s, server, opts, protocol)
  return setmetatable({_s = s, _p = W.parser(server, opts.max_message_size or DEFAULT_MAX),
    _client = not server or nil, _close_timeout = opts.close_timeout, protocol = protocol}, WSMT)
end

local function check_ws(self, fname)
  if getmetatable(self) ~= WSMT then checks.bad_self(self, WSMT, fname) end
end

-- The connection is over: the stream closes (after what is buffered),
-- the pings waiting fail; code and reason are what receive returns
-- from now on.
local function finish(self, code, reason)
  self._closed, self._code, self._reason = true, code, reason
  self._s:close()
  if self._timer then self._timer:cancel() end
  for _, p in ipairs(self._pings or {}) do
    if not p[2]:done() then
      p[2]:set_exception(ConnectionError(("WebSocket closed (%d) before the pong"):format(code)))
    end
  end
  self._pings = nil
  return nil, code, reason
end

local function close_payload(code, reason)
  if code == 1005 then return "" end
  return string.pack(">I2", code) .. reason
end

-- fn() for at most close_timeout. The timeout, or the connection failing
-- meanwhile, just ends it; another error (a cancellation) closes the
-- connection with code and reason, and goes on.
local function within_close_timeout(self, fn, code, reason)
  local ok, err = pcall(combinators.timeout, self._close_timeout or CLOSE_TIMEOUT, fn)
  if ok or core.TimeoutError:is(err) or core.OSError:is(err) then return end
  if not self._closed then finish(self, code, reason) end
  error(err, 0)
end

local LATE = "no close frame from the peer in time"

-- Reads until the peer's close frame (dropping messages) or the timeout.
local function await_close(self)
  within_close_timeout(self, function()
    while not self._closed do self:receive() end
  end, 1006, LATE)
  if not self._closed then finish(self, 1006, LATE) end
end

-- After the closing handshake a client lets the server close the TCP
-- connection first (RFC 6455 §7.1.1: the server then holds its
-- TIME_WAIT), waiting at most close_timeout for the end of its input.
local function await_eof(self, code, reason)
  local s = self._s
  within_close_timeout(self, function()
    repeat until s:read(65536) == ""
  end, code, reason)
end

-- Sends our close frame.
local function start_close(self, code, reason)
  self._close_sent = true
  send(self._s, close_payload(code, reason), "close", self._p)
end

-- receive ended with nil, code, reason, how: the peer's close frame
-- (answered with its code, unless ours went first), a violation of its
-- to close with, or the end of the connection (1006, "lost"). After a
-- message refused (1007, 1009: "refused") the input can still be read,
-- and is, for the peer's close frame: closing at once with unread input
-- would reset the connection, and the peer could lose our close frame.
local function ended(self, code, reason, how)
  if how ~= "lost" and not self._close_sent then
    start_close(self, code, how == "close" and "" or reason)
    if how == "refused" and core.current_task() then
      await_close(self)
      self._code, self._reason = code, reason
      return nil, code, reason
    end
  end
  if how == "close" and self._client and core.current_task() then await_eof(self, code, reason) end
  return finish(self, code, reason)
end

-- A pong: the pings it answers are those up to the one it echoes.
local function ponged(self, data)
  local pings = self._pings
  if not pings then return end
  for i, p in ipairs(pings) do
    if p[1] == data then
      for _ = 1, i do table.remove(pings, 1)[2]:set_result(true) end
      return
    end
  end
end

--- ws:receive() -> data, kind ("text" or "binary"); or, once closed,
--- nil, the close code and the reason.
---@return string|nil data
---@return string|integer kind "text" or "binary", or the close code
---@return string|nil reason once closed
function WebSocket:receive()
  check_ws(self, "receive")
  if self._closed then return nil, self._code, self._reason end
  local s, p = self._s, self._p
  while true do
    local data, kind, reason, how = receive(s, p)
    if data == nil then return ended(self, kind, reason, how) end
    if kind ~= "pong" then return data, kind end
    ponged(self, data)
  end
end

local function check_open(self, fname)
  if self._closed or self._close_sent then
    error(ConnectionError(("%s: the WebSocket is closed (%s)"):format(fname,
      self._code or "closing")), 2)
  end
end

local KINDS = {text = true, binary = true}

--- ws:send(data, kind): one message, "text" (the default: data must be
--- UTF-8) or "binary"; suspends while the peer does not read.
---@param data string
---@param kind "text"|"binary"|nil
function WebSocket:send(data, kind)
  check_ws(self, "send")
  checks.check(type(data) == "string", data, 1, "send", "string")
  kind = kind or "text"
  if not KINDS[kind] then checks.argerror(2, "send", "\"text\" or \"binary\" expected") end
  if kind == "text" and not W.utf8_valid(data) then
    checks.argerror(1, "send", "UTF-8 text expected (send bytes as \"binary\")")
  end
  check_open(self, "send")
  send(self._s, data, kind, self._p)
  self._s:drain()
end

--- ws:ping(data) -> a Future done when the peer's pong comes (which a
--- receive() reads).
---@param data? string at most 125 bytes
---@return lasync.Future
function WebSocket:ping(data)
  check_ws(self, "ping")
  data = data or ""
  checks.check(type(data) == "string" and #data <= 125, data, 1, "ping",
    "string of at most 125 bytes")
  check_open(self, "ping")
  local f = core.Future()
  self._pings = self._pings or {}
  self._pings[#self._pings + 1] = {data, f}
  send(self._s, data, "ping", self._p)
  return f
end

-- After our close frame: in a task that can read, reads until the peer's
-- (at most CLOSE_TIMEOUT); else (another task is in receive(), which then
-- reads it, or outside a task) the connection is closed after
-- CLOSE_TIMEOUT at the latest.
local function close_later(self)
  self._timer = core.get_running_loop():call_later(self._close_timeout or CLOSE_TIMEOUT, function()
    if not self._closed then finish(self, 1006, LATE) end
  end)
end

local function closing(self)
  if core.current_task() and not receiving(self._s) then return await_close(self) end
  close_later(self)
end

--- ws:close(code, reason): the closing handshake (code 1000 by default):
--- waits for the peer's close frame (at most close_timeout) when it can,
--- see closing.
---@param code? integer default 1000
---@param reason? string at most 123 bytes
function WebSocket:close(code, reason)
  check_ws(self, "close")
  code = code == nil and 1000 or code
  reason = reason or ""
  if math.type(code) ~= "integer" or not W.valid_close_code(code) then
    checks.argerror(1, "close", "close code (1000-1003, 1007-1014 or 3000-4999) expected")
  end
  checks.check(type(reason) == "string" and #reason <= 123 and W.utf8_valid(reason),
    reason, 2, "close", "UTF-8 reason of at most 123 bytes")
  if self._closed or self._close_sent then return end
  start_close(self, code, reason)
  closing(self)
end

--- The server's handler of ws returned (failed: raised): the closing
--- handshake, with 1000 (1011) unless it began.
---@param self lasync.WebSocket
---@param failed boolean
function M.done(self, failed)
  if self._closed then return end
  if not self._close_sent then start_close(self, failed and 1011 or 1000, "") end
  closing(self)
end

--- The server is shutting down: close 1001 is sent at once; the handler
--- sees the peer's answer in receive().
---@param self lasync.WebSocket
function M.going_away(self)
  if self._closed or self._close_sent then return end
  start_close(self, 1001, "server shutting down")
  close_later(self)
end

-- -------------------------------------------------------------- handshakes --

-- Whether the comma-separated list value has token (case-insensitive).
local function has_token(value, token)
  for item in (value or ""):gmatch("[^,]+") do
    if item:match("^%s*(.-)%s*$"):lower() == token then return true end
  end
  return false
end

local function refused(status, why, headers)
  local e = HTTPError(why)
  e.status, e.headers = status, headers
  error(e, 0)
end

-- The subprotocol: the client's first that the server has, or nil.
local function choose_protocol(offered, ours)
  if not ours then return nil end
  for p in (offered or ""):gmatch("[^,%s]+") do
    for _, q in ipairs(ours) do
      if p == q then return p end
    end
  end
end

--- The 101 response's headers for a handshake request (RFC 6455 §4.2)
--- and the subprotocol chosen; HTTPError (status 400, or 426 for another
--- version) when req is not one.
---@param req lasync.http.Request
---@param opts table
function M.accept(req, opts)
  local h = req.headers
  if req.method ~= "GET" or req.version ~= "1.1" or not has_token(h.upgrade, "websocket")
      or not has_token(h.connection, "upgrade") then
    refused(400, "not a WebSocket handshake")
  end
  local key = h["sec-websocket-key"]
  if not key or #key ~= 24 or not key:match("^[%w+/]+==$") then
    refused(400, "bad Sec-WebSocket-Key")
  end
  if h["sec-websocket-version"] ~= "13" then
    refused(426, "unsupported WebSocket version", {["Sec-WebSocket-Version"] = "13"})
  end
  local protocol = choose_protocol(h["sec-websocket-protocol"], opts.protocols)
  return {Upgrade = "websocket", Connection = "Upgrade",
    ["Sec-WebSocket-Accept"] = W.accept_key(key),
    ["Sec-WebSocket-Protocol"] = protocol}, protocol
end

-- The client's side of the handshake on s: the subprotocol agreed on.
local function handshake(s, u, opts)
  local key = W.new_key()
  local headers = {Upgrade = "websocket", Connection = "Upgrade",
    ["Sec-WebSocket-Key"] = key, ["Sec-WebSocket-Version"] = "13"}
  if opts.protocols and #opts.protocols > 0 then
    headers["Sec-WebSocket-Protocol"] = table.concat(opts.protocols, ", ")
  end
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  local res = client._send(s, u, "GET", {headers = headers})
  if not res then refused(nil, "connection closed before the handshake's response") end
  if res.status ~= 101 then
    refused(res.status, ("WebSocket handshake refused: %d %s"):format(res.status, res.reason))
  end
  if not has_token(res.headers.upgrade, "websocket") or not has_token(res.headers.connection, "upgrade")
      or res.headers["sec-websocket-accept"] ~= W.accept_key(key) then
    refused(nil, "bad WebSocket handshake response")
  end
  local protocol = res.headers["sec-websocket-protocol"]
  if protocol and choose_protocol(protocol, opts.protocols) ~= protocol then
    refused(nil, "the server chose a subprotocol not offered: " .. protocol)
  end
  return protocol
end

local function open(u, opts)
  local s = client._connect(u, opts)
  return M.new(s, false, opts, client._closing(s, pcall(handshake, s, u, opts)))
end

--- lasync.http.websocket_connect(url, opts) -> ws, for a ws:// or wss://
--- URL. opts: protocols (list offered), max_message_size (1 MiB), headers,
--- timeout (of the connection and handshake), ssl (as open_connection's),
--- close_timeout (5 s: how long a closing handshake waits).
---@param url string
---@param opts? table
---@return lasync.WebSocket
function M.connect(url, opts)
  checks.check(type(url) == "string", url, 1, "websocket_connect", "url (string)")
  local u, problem = client._parse_url(url, true)
  if not u then checks.argerror(1, "websocket_connect", ("%s expected, got '%s'"):format(problem, url)) end
  opts = checks.options(opts, 2, "websocket_connect", CONNECT_OPTS)
  checks.task("websocket_connect")
  if opts.timeout then return combinators.timeout(opts.timeout, open, u, opts) end
  return open(u, opts)
end

return M
