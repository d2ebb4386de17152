--- lasync.httpclient: the HTTP/1.1 client of lasync.http (docs/reference.md
-- §10): request, get and post, which lasync.http re-exports. Heads are
-- written and parsed in C (core._http, src/http.c), bodies decoded there;
-- this module adds URLs, the connection pool, redirects and the timeout.
-- Connections are kept alive per scheme, host and port in a pool of the
-- running loop, and dropped with it.
local core = require "lasync.core"
local streams = require "lasync.streams"
local combinators = require "lasync.combinators"
local checks = require "lasync.checks"
checks.internal()

local H = core._http
local pcall, error, type, pairs, tonumber, tostring, setmetatable =
  pcall, error, type, pairs, tonumber, tostring, setmetatable
local argerror = checks.argerror

local M = {}

local MAX_HEAD = 64 * 1024    -- a longer response head is malformed
local MAX_REDIRECTS = 10
local IDLE_PER_KEY = 16       -- idle connections kept per scheme/host/port
local READ_SIZE = 65536       -- res:read()'s default
local REDIRECT = {[301] = true, [302] = true, [303] = true, [307] = true, [308] = true}
local USER_AGENT = "lasync/" .. core.VERSION

local OPTS = {
  headers = checks.option("table", "a table of header names to strings or lists"),
  body = checks.option("string", "a string"),
  timeout = checks.NUMBER,
  ssl = checks.ANY,
  follow_redirects = checks.BOOLEAN,
  stream = checks.BOOLEAN,
}

-- ------------------------------------------------------------------ URLs --

local DEFAULT_PORT = {http = 80, https = 443}
local WS_PORT = {ws = 80, wss = 443}

-- The parts of an absolute http(s) URL (ws: a ws(s) one): scheme, host,
-- port, authority (for Host), target (path and query). nil and the
-- problem when it is not one.
local function parse_url(url, ws)
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  local ports = ws and WS_PORT or DEFAULT_PORT
  scheme = scheme and scheme:lower()
  if not ports[scheme] then
    return nil, ws and "a ws:// or wss:// URL" or "an http:// or https:// URL"
  end
  local authority, target = rest:match("^([^/?#]*)([^#]*)")
  authority = authority:gsub("^.*@", "")  -- credentials are not sent
  local host, port = authority:match("^%[([^%]]+)%]:?(%d*)$")
  if not host then host, port = authority:match("^([^:]+):?(%d*)$") end
  port = port ~= "" and tonumber(port) or ports[scheme]
  if not host or port > 65535 then return nil, "a URL with a host and a valid port" end
  if target:sub(1, 1) ~= "/" then target = "/" .. target end
  return {scheme = scheme, host = host, port = port, authority = authority,
          target = target}
end

-- A redirect's Location against the URL u that gave it.
local function resolve_location(u, location)
  if location:match("^%a[%w+.-]*://") then return location end
  local base = u.scheme .. "://" .. u.authority
  if location:sub(1, 2) == "//" then return u.scheme .. ":" .. location end
  if location:sub(1, 1) == "/" then return base .. location end
  local dir = u.target:match("^[^?]*/") or "/"
  return base .. dir .. location
end

-- ------------------------------------------------------------------ pool --

-- What the TLS settings of a connection are, as part of its pool key: a
-- connection verified one way is never reused for a request that asks
-- for another. A settings table counts by its contents, so that a literal
-- table per call still reuses connections.
local function ssl_key(ssl)
  if type(ssl) ~= "table" then return tostring(ssl) end
  local parts = {}
  for k, v in pairs(ssl) do parts[#parts + 1] = tostring(k) .. "=" .. tostring(v) end
  table.sort(parts)
  return table.concat(parts, ";")
end

-- The pool key of a request to u.
local function pool_key(u, opts)
  local key = u.scheme .. "://" .. u.authority
  return u.scheme == "https" and key .. " " .. ssl_key(opts.ssl) or key
end

local pools = setmetatable({}, {__mode = "k"})  -- loop -> key -> idle list

local function idle_list(key)
  local loop = core.get_running_loop()
  local pool = pools[loop]
  if not pool then
    pool = {}
    pools[loop] = pool
  end
  pool[key] = pool[key] or {}
  return pool[key]
end

-- An idle connection for key that the server has not closed, or nil.
local function take_idle(key)
  local list = idle_list(key)
  while #list > 0 do
    local s = table.remove(list)
    if not s:is_closing() and not s:at_eof() then return s end
    s:close()
  end
end

local function give_back(key, s)
  local list = idle_list(key)
  if #list < IDLE_PER_KEY then list[#list + 1] = s else s:close() end
end

-- -------------------------------------------------------------- exchange --

local function has_header(headers, name)
  for k in pairs(headers) do
    if type(k) == "string" and k:lower() == name then return true end
  end
  return false
end

-- The request's headers: the caller's, with Host and User-Agent added.
local function request_headers(u, given)
  local h = {}
  for k, v in pairs(given or {}) do h[k] = v end
  if not has_header(h, "host") then h.Host = u.authority end
  if not has_header(h, "user-agent") then h["User-Agent"] = USER_AGENT end
  return h
end

-- Writes the request on s and reads the response head: a Message, or nil
-- when s ended before any byte of it (a kept-alive connection the server
-- closed meanwhile).
local function send(s, u, method, opts)
  H.write_request(s, method, u.target, request_headers(u, opts.headers), opts.body)
  s:drain()
  return H.read_response(s, MAX_HEAD, method)
end

local SECURE = {https = true, wss = true}

local function connect(u, opts)
  local ssl = SECURE[u.scheme] and (opts.ssl or true) or nil
  return (streams.open_connection(u.host, u.port, {ssl = ssl}))
end

local function closing(s, ok, ...)
  if not ok then
    s:close()
    error(..., 0)
  end
  return ...
end

-- The connection and response head of one exchange. A reused connection
-- that fails before the response began is retried once on a new one (the
-- request is a string: it can be sent again).
local function exchange(u, method, opts)
  local s = take_idle(u.key)
  if s then
    local ok, msg = pcall(send, s, u, method, opts)
    if ok and msg then return s, msg end
    s:close()
    if not ok and not core.OSError:is(msg) then error(msg, 0) end
  end
  s = connect(u, opts)
  local msg = closing(s, pcall(send, s, u, method, opts))
  if not msg then
    s:close()
    error(core.HTTPError("connection closed before a response"), 0)
  end
  return s, msg
end

-- Where the connection goes once the body is read whole.
local function finished(u, s, msg)
  if msg.keep_alive and not msg.until_close then give_back(u.key, s) else s:close() end
end

-- ------------------------------------------------------------- responses --

---@class lasync.http.Response
---@field status integer
---@field reason string
---@field version string
---@field headers table case-insensitive; headers:get_all(name)
---@field body string|nil nil with stream = true
local Streamed = {}
Streamed.__index = Streamed

--- res:read(n): up to n bytes of the body (default 64 KiB), "" at its end.
---@param n? integer
---@return string "" at the end
function Streamed:read(n)
  if self._done then return "" end
  local data = closing(self._s, pcall(H.read_body, self._s, self._msg, nil, n or READ_SIZE))
  if data == "" then
    self._done = true
    finished(self._u, self._s, self._msg)
  end
  return data
end

--- res:lines(): an iterator over the body's lines, without "\n" or "\r\n".
---@return fun(): string|nil
function Streamed:lines()
  local pending = ""
  return function()
    while true do
      local line, rest = pending:match("^(.-)\r?\n(.*)$")
      if line then
        pending = rest
        return line
      end
      local data = self:read()
      if data == "" then
        local last = pending ~= "" and pending or nil
        pending = ""
        return last
      end
      pending = pending .. data
    end
  end
end

--- res:close(): drops the rest of the body (and so the connection).
function Streamed:close()
  if self._done then return end
  self._done = true
  self._s:close()
end

local function response(msg, body)
  return {status = msg.status, reason = msg.reason, version = msg.version,
          headers = msg.headers, body = body}
end

local function streamed(u, s, msg)
  local res = response(msg, nil)
  res._u, res._s, res._msg = u, s, msg
  return setmetatable(res, Streamed)
end

local function read_whole(u, s, msg)
  local body = closing(s, pcall(H.read_body, s, msg, math.maxinteger))
  finished(u, s, msg)
  return response(msg, body)
end

-- The redirect target of a response to method, or nil to stop there.
local function redirect_of(u, method, res, opts)
  if opts.follow_redirects == false or not REDIRECT[res.status] then return nil end
  if method ~= "GET" and method ~= "HEAD" then return nil end
  local location = res.headers.location
  return location and resolve_location(u, location)
end

local function fetch(method, url, opts)
  for _ = 0, MAX_REDIRECTS do
    local u = assert(parse_url(url))
    u.key = pool_key(u, opts)
    local s, msg = exchange(u, method, opts)
    local res = opts.stream and streamed(u, s, msg) or read_whole(u, s, msg)
    local next_url = redirect_of(u, method, res, opts)
    if not next_url or not parse_url(next_url) then return res end
    if opts.stream then res:close() end
    url = next_url
  end
  error(core.HTTPError(("more than %d redirects"):format(MAX_REDIRECTS)), 0)
end

-- The checks of request, get and post: url is argument nurl, opts nurl+1
-- (post's body comes between: it is checked as opts.body).
local function start(fname, method, url, nurl, opts)
  checks.check(type(url) == "string", url, nurl, fname, "url (string)")
  local u, problem = parse_url(url)
  if not u then argerror(nurl, fname, ("%s expected, got '%s'"):format(problem, url)) end
  opts = checks.options(opts, nurl + 1, fname, OPTS)
  checks.task(fname)
  if opts.timeout then return combinators.timeout(opts.timeout, fetch, method, url, opts) end
  return fetch(method, url, opts)
end

--- lasync.http.request(method, url, opts) -> response: see the file's
--- header and docs/reference.md §10.
---@param method string
---@param url string
---@param opts? table headers, body, timeout, ssl, follow_redirects, stream
---@return lasync.http.Response
function M.request(method, url, opts)
  checks.check(type(method) == "string" and method:match("^[%w!#$%%&'*+.^_`|~-]+$"),
               method, 1, "request", "method (an HTTP token)")
  return start("request", method, url, 2, opts)
end

--- http.get(url, opts): request("GET", url, opts).
---@param url string
---@param opts? table as request's
---@return lasync.http.Response
function M.get(url, opts)
  return start("get", "GET", url, 1, opts)
end

--- http.post(url, body, opts): request("POST", url, opts) with that body.
---@param url string
---@param body string
---@param opts? table as request's
---@return lasync.http.Response
function M.post(url, body, opts)
  checks.check(type(body) == "string", body, 2, "post", "body (string)")
  local o = {}
  for k, v in pairs(checks.options(opts, 3, "post", OPTS)) do o[k] = v end
  o.body = body
  return start("post", "POST", url, 1, o)
end

-- lasync.websocket's
M._parse_url, M._connect, M._send, M._closing = parse_url, connect, send, closing

return M
