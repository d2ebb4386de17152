--- lasync.socket: LuaSocket 3.1's interface over lasync's streams
-- (docs/reference.md §12), so that libraries written for LuaSocket run in
-- tasks: a call that would block suspends the task instead. Results and
-- error strings are LuaSocket's ("timeout", "closed", "connection
-- refused", ...; nil, err, partial). Receiving is src/socket.c's, in place
-- over the stream's input buffer.
local core = require "lasync.core"
local checks = require "lasync.checks"
local combinators = require "lasync.combinators"
local queues = require "lasync.queues"
checks.internal()

local type, tostring, error, pcall, select, setmetatable, ipairs =
  type, tostring, error, pcall, select, setmetatable, ipairs
local OSError, TimeoutError = core.OSError, core.TimeoutError
local receive, strerror = core._sock_receive, core._sock_strerror
local CHUNK = core._SOCK_CHUNK

---@class lasync.socket
---@field dns lasync.socket.dns
---@field try fun(ok: any, ...): ... newtry()'s try, without finalizer
---@field sinkt table ltn12 sinks by mode
---@field sourcet table ltn12 sources by mode
---@field gettime fun(): number seconds since the epoch
local M = {_VERSION = "LuaSocket 3.1.0", _SETSIZE = 1024,
           _DATAGRAMSIZE = 8192, BLOCKSIZE = 2048}

-- ---------------------------------------------------------------- checks --

--- The running task; raises "lasync.socket: fname called outside a task".
local function in_task(fname) return checks.task("lasync.socket: " .. fname) end

local argerror = checks.argerror

local function check_number(v, n, fname)
  checks.check(type(v) == "number", v, n, fname, "number")
end

local function check_string(v, n, fname)
  checks.check(type(v) == "string", v, n, fname, "string")
end

-- LuaSocket's string for an error raised by the core (an OSError; a
-- TimeoutError of wait_for), or the error again if it is another.
local function errstring(e)
  if TimeoutError:is(e) then return "timeout" end
  if not OSError:is(e) or core.CancelledError:is(e) then error(e, 0) end
  if e.code == "EAI_NONAME" then return "host or service not provided, or not known" end
  if math.type(e.errno) == "integer" and e.errno > 0 then return strerror(e.errno) end
  return (tostring(e.message):gsub("^.*: ", ""):lower())
end

-- ---------------------------------------------------------------- timing --

--- Seconds since the epoch, with fractions.
M.gettime = core._sock_gettime

--- Suspends the running task for s seconds (0 or negative: not at all).
---@param s number seconds
function M.sleep(s)
  check_number(s, 1, "sleep")
  in_task("sleep")
  if s > 0 then core.sleep(s) end
end

-- The timeouts of a socket: block (each wait; < 0: none) and the loop
-- time its current call must end by (0: none), for _sock_receive.
local function deadlines(self)
  local total = self.total
  return self.block, total >= 0 and core.time() + total or 0
end

-- Runs fn(...) under the socket's timeout: fn's results, or nil, err.
local function timed(self, fn, ...)
  local t = self.block
  if self.total >= 0 and (t < 0 or self.total < t) then t = self.total end
  local ok, a, b
  if t < 0 then ok, a, b = pcall(fn, ...)
  else
    local args = table.pack(...)
    ok, a, b = pcall(combinators.wait_for, function() return fn(table.unpack(args, 1, args.n)) end, t)
  end
  if ok then return a, b end
  return nil, errstring(a)
end

-- ------------------------------------------------------------------- tcp --

--- A class named name (its __name) and the check of its methods' self.
-- (lasync.socket.ssl's classes are made so too.)
function M._class(name)
  local cls = {__name = name}
  cls.__index = cls
  return cls, function(self, fname)
    if getmetatable(self) ~= cls then checks.bad_self(self, cls, fname) end
    return self
  end
end

---@class lasync.socket.tcp
local tcp, check_tcp = M._class("tcp{master}")

-- The classes settimeout and gettimeout serve (udp's joins below).
local TIMED = {[tcp] = true}

local function check_timed(self, fname)
  if not TIMED[getmetatable(self)] then checks.bad_self(self, tcp, fname) end
  return self
end

local function new_tcp(family, state, stream)
  return setmetatable({family = family, state = state, stream = stream,
                       block = -1, total = -1, sent = 0, received0 = 0,
                       birth = M.gettime()}, tcp)
end

--- tcp(): a new master TCP object (tcp4, tcp6: of that family only).
---@return lasync.socket.tcp
function M.tcp() return new_tcp(nil, "master") end
--- tcp4(): a master TCP object, IPv4 only.
---@return lasync.socket.tcp
function M.tcp4() return new_tcp("inet", "master") end
--- tcp6(): a master TCP object, IPv6 only.
---@return lasync.socket.tcp
function M.tcp6() return new_tcp("inet6", "master") end

-- An accepted socket dropped without close() lets its connection's
-- handler return, which closes it (LuaSocket closes on collection too).
function tcp:__gc()
  local parked = self.parked
  if parked and not parked:done() then pcall(parked.set_result, parked, true) end
end

function tcp:__tostring()
  return ("tcp{%s}: %p"):format(self.closed_state or self.state, self)
end

local MODES = {b = "block", t = "total", r = "total"}

--- settimeout(t, mode): mode "b" (each wait, the default) or "t" (the
--- whole call); nil or negative: no limit.
---@param t? number seconds
---@param mode "b"|"t"|nil
---@return 1
function tcp:settimeout(t, mode)
  check_timed(self, "settimeout")
  if t ~= nil then check_number(t, 2, "settimeout") end
  local field = MODES[mode or "b"] or argerror(3, "settimeout", "invalid timeout mode")
  self[field] = (t == nil or t < 0) and -1 or t
  return 1
end

--- gettimeout() -> block, total (-1: none).
---@return number block
---@return number total
function tcp:gettimeout()
  check_timed(self, "gettimeout")
  return self.block, self.total
end

-- The addresses of host:port, of the socket's family if it has one.
local function addresses(self, host, port)
  local ok, list = pcall(core.getaddrinfo, host, port)
  if not ok then return nil, errstring(list) end
  if self.family then
    local kept = {}
    for _, a in ipairs(list) do
      if a.family == self.family then kept[#kept + 1] = a end
    end
    list = kept
  end
  if #list == 0 then return nil, "host or service not provided, or not known" end
  return list
end

local function check_hostport(host, port, fname)
  check_string(host, 1, fname)
  port = math.tointeger(port) or tonumber(port)
  if not math.tointeger(port) or port < 0 or port > 65535 then
    argerror(2, fname, "port (integer from 0 to 65535) expected")
  end
  return host, math.tointeger(port)
end

local function connect_any(list, lhost, lport)
  local first
  for _, a in ipairs(list) do
    local ok, s = pcall(core.tcp_connect, a.host, a.port, CHUNK, lhost, lport)
    if ok then return s, a end
    if not OSError:is(s) or core.CancelledError:is(s) then error(s, 0) end
    first = first or s
  end
  error(first, 0)
end

local apply_options  -- the options set before connect (below)

local function family_of(a) return a.family == "inet6" and "inet6" or "inet" end

--- connect(host, port) -> 1, or nil, err.
---@param host string
---@param port integer
---@return 1|nil
---@return string|nil err
function tcp:connect(host, port)
  check_tcp(self, "connect")
  host, port = check_hostport(host, port, "connect")
  in_task("tcp:connect")
  if self.state == "client" then return nil, "already connected" end
  if self.state == "closed" then return nil, "closed" end
  local list, err = addresses(self, host, port)
  if not list then return nil, err end
  local s, a = timed(self, connect_any, list, self.lhost, self.lport)
  if not s then return nil, a end
  self.stream, self.state, self.family = s, "client", family_of(a)
  self.received0 = core._stream_received(s)
  apply_options(self)
  return 1
end

-- The stream of a connected socket, or nil, "closed".
local function stream_of(self, fname)
  check_tcp(self, fname)
  in_task("tcp:" .. fname)
  local s = self.stream
  if s == nil or self.state == "closed" then return nil end
  return s
end

-- A count above CHUNK is read in CHUNK pieces (reading pauses past it).
local function receive_count(s, n, block, total)
  local parts = {}
  while n > CHUNK do
    local data, err, partial = receive(s, "n", CHUNK, block, total)
    if not data then return nil, err, table.concat(parts) .. partial end
    parts[#parts + 1], n = data, n - CHUNK
  end
  local data, err, partial = receive(s, "n", n, block, total)
  parts[#parts + 1] = data or partial
  return data and table.concat(parts), err, not data and table.concat(parts) or nil
end

-- A line or the rest: longer than CHUNK, it comes in pieces ("more").
local function receive_long(s, pat, block, total)
  local data, err, partial = receive(s, pat, 0, block, total)
  if err ~= "more" then return data, err, partial end
  local parts = {partial}
  repeat
    data, err, partial = receive(s, pat, 0, block, total)
    parts[#parts + 1] = data or partial
  until err ~= "more"
  -- "*a" ends at the peer's close: the pieces before it are the data
  if data or pat == "a" and err == "closed" then return table.concat(parts) end
  return nil, err, table.concat(parts)
end

local PATTERNS = {["*l"] = "l", l = "l", ["*a"] = "a", a = "a"}

-- The pattern and count of receive's argument 2.
local function check_pattern(pattern)
  if type(pattern) == "number" then
    local n = math.tointeger(pattern) or math.floor(pattern)
    if n < 0 then argerror(2, "receive", "invalid receive pattern") end
    return "n", n
  end
  if pattern == nil then return "l" end
  return PATTERNS[pattern] or argerror(2, "receive", "invalid receive pattern")
end

local function with_prefix(prefix, data, err, partial)
  if prefix == "" then return data, err, partial end
  if data then return prefix .. data end
  return nil, err, prefix .. partial
end

--- receive(pattern, prefix) -> data, or nil, err, partial. pattern: "\*l"
--- (a line, without its CR and LF; the default), "\*a" (to the end), a
--- count (of bytes, the prefix's included).
---@param pattern string|integer|nil
---@param prefix? string
---@return string|nil data
---@return string|nil err
---@return string|nil partial
function tcp:receive(pattern, prefix)
  local pat, n = check_pattern(pattern)
  if prefix ~= nil then check_string(prefix, 3, "receive") end
  prefix = prefix or ""
  local s = stream_of(self, "receive")
  if not s then return nil, "closed", prefix end
  local block, total = deadlines(self)
  if pat == "n" then
    if n <= #prefix then return prefix end
    return with_prefix(prefix, receive_count(s, n - #prefix, block, total))
  end
  return with_prefix(prefix, receive_long(s, pat, block, total))
end

-- The output waits in the stream's buffer: draining it is what may wait,
-- under the timeout (0: it never waits).
local function drain(s) s:drain() end

-- LuaSocket's string.sub-like bounds of send(data, i, j).
local function bounds(len, i, j)
  i, j = i or 1, j or -1
  if i < 0 then i = math.max(len + i + 1, 1) elseif i == 0 then i = 1 end
  if j < 0 then j = len + j + 1 elseif j > len then j = len end
  return i, j
end

--- send(data, i, j) -> the index of the last byte sent, or nil, err, last.
---@param data string
---@param i? integer
---@param j? integer
---@return integer|nil last
---@return string|nil err
---@return integer|nil last_sent
function tcp:send(data, i, j)
  check_string(data, 2, "send")
  if i ~= nil then check_number(i, 3, "send") end
  if j ~= nil then check_number(j, 4, "send") end
  i, j = bounds(#data, i and math.floor(i), j and math.floor(j))
  local s = stream_of(self, "send")
  if not s then return nil, "closed", i - 1 end
  if j < i then return i - 1 end
  local ok, err = pcall(s.write, s, (i == 1 and j == #data) and data or data:sub(i, j))
  if not ok then return nil, errstring(err), i - 1 end
  if self.block ~= 0 and self.total ~= 0 then
    ok, err = timed(self, drain, s)
    if ok == nil and err then return nil, err, i - 1 end
  end
  self.sent = self.sent + (j - i + 1)
  return j
end

--- close() -> 1 (again: 1).
---@return 1
function tcp:close()
  check_tcp(self, "close")
  if self.state == "closed" then return 1 end
  if self.stream then self.stream:close() end
  if self.server then
    self.server:close()
    while not self.accepted:empty() do  -- their handlers return: closed
      self.accepted:get_nowait()[2]:set_result(true)
    end
  end
  if self.parked then self.parked:set_result(true) end
  self.closed_state, self.state = self.state, "closed"
  return 1
end

local SHUTDOWN = {both = true, send = true, receive = true}

--- shutdown(mode): "both" (the default), "send" or "receive" -> 1.
---@param mode "both"|"send"|"receive"|nil
---@return 1
function tcp:shutdown(mode)
  check_tcp(self, "shutdown")
  mode = mode or "both"
  if not SHUTDOWN[mode] then argerror(2, "shutdown", "invalid option '" .. tostring(mode) .. "'") end
  local s = self.stream
  if s and self.state == "client" then
    if mode == "receive" then return 1 end
    if mode == "both" then s:close() elseif s:can_write_eof() then pcall(s.write_eof, s) end
  end
  return 1
end

local function name_of(self, info)
  local s = self.stream
  if self.state == "server" or self.server then
    local host, port = self.server:sockname()
    return host, port, self.family or (host:find(":") and "inet6" or "inet")
  end
  if not s or self.state ~= "client" then return nil, "closed" end
  local host, port = s:get_extra_info(info)
  if host == nil then return nil, "closed" end
  if type(host) == "table" then host, port = host[1] or host.host, host[2] or host.port end
  return host, port, self.family
end

--- getpeername() -> host, port, family.
---@return string host
---@return integer port
---@return string family
function tcp:getpeername()
  check_tcp(self, "getpeername")
  if self.server then return nil, "getpeername failed" end
  return name_of(self, "peername")
end

--- getsockname() -> host, port (a string, as LuaSocket's), family.
---@return string host
---@return string port
---@return string family
function tcp:getsockname()
  check_tcp(self, "getsockname")
  local host, port, family = name_of(self, "sockname")
  if host == nil then return host, port end
  return host, tostring(port), family
end

--- getstats() -> bytes received, bytes sent, age in seconds.
---@return integer received
---@return integer sent
---@return number age
function tcp:getstats()
  check_tcp(self, "getstats")
  local got = self.stream and core._stream_received(self.stream) - self.received0 or 0
  return got, self.sent, M.gettime() - self.birth
end

--- setstats(received, sent, age) -> 1.
---@param received integer
---@param sent integer
---@param age number
---@return 1
function tcp:setstats(received, sent, age)
  check_tcp(self, "setstats")
  check_number(received, 2, "setstats")
  check_number(sent, 3, "setstats")
  check_number(age, 4, "setstats")
  self.received0 = self.stream and core._stream_received(self.stream) - received or -received
  self.sent, self.birth = sent, M.gettime() - age
  return 1
end

--- dirty() -> whether input is buffered.
---@return boolean
function tcp:dirty()
  check_tcp(self, "dirty")
  local s = self.stream
  return s ~= nil and self.state == "client" and select(2, core._sock_ready(s))
end

--- getfd() -> the descriptor (-1 if none).
---@return integer
function tcp:getfd()
  check_tcp(self, "getfd")
  if self.stream and self.state == "client" then return self.stream:get_extra_info("fd") or -1 end
  return -1
end

--- getfamily() -> "inet" or "inet6" (nil before a connect or bind).
---@return string|nil
function tcp:getfamily()
  check_tcp(self, "getfamily")
  return self.family or "inet"
end

--- class() -> the class name LuaSocket shows ("tcp{client}", ...).
---@return string
function tcp:class()
  check_tcp(self, "class")
  return "tcp{" .. (self.closed_state or self.state) .. "}"
end

-- --------------------------------------------------------------- options --

-- Checks setoption's value for name (argument 3): LuaSocket's messages.
local function check_option(name, v, fname)
  check_string(name, 2, fname)
  local kind = core._sock_option_kind(name)
    or argerror(2, fname, "unsupported option '" .. name .. "'")
  if fname == "getoption" then return end
  if kind == "linger" then
    checks.check(type(v) == "table", v, 3, fname, "table")
    if type(v.on) ~= "boolean" then argerror(3, fname, "boolean 'on' field expected") end
    if math.type(v.timeout) ~= "integer" then argerror(3, fname, "integer 'timeout' field expected") end
  elseif kind == "number" then
    checks.integer(v, 3, fname, 0, nil, "integer")
  else
    checks.check(type(v) == "boolean", v, 3, fname, "boolean")
  end
end

-- The descriptor options apply to; a master socket has none yet: they
-- are kept for connect (false), a server's is the server's own (nil).
local function option_fd(self)
  if self.state == "master" and not self.server then return false end
  if self.state == "client" and self.stream then return self.stream:get_extra_info("fd") end
  return nil
end

--- setoption(name, value) -> 1, or nil, err. The names of LuaSocket's
--- options.c: keepalive, reuseaddr, reuseport, tcp-nodelay, tcp-keepidle,
--- tcp-keepcnt, tcp-keepintvl, linger ({on=, timeout=}), ipv6-v6only,
--- recv-buffer-size, send-buffer-size, broadcast, dontroute, ...
---@param name string
---@param value any
---@return 1|nil
---@return string|nil err
function tcp:setoption(name, value)
  check_tcp(self, "setoption")
  check_option(name, value, "setoption")
  local fd = option_fd(self)
  if fd == false then
    self.options = self.options or {}
    self.options[#self.options + 1] = {name, value}
    return 1
  end
  if not fd then return nil, "closed" end
  return core._sock_setoption(fd, name, value)
end

--- getoption(name) -> its value, or nil, err.
---@param name string
---@return any value
---@return string|nil err
function tcp:getoption(name)
  check_tcp(self, "getoption")
  check_option(name, nil, "getoption")
  local fd = option_fd(self)
  if fd == false then
    for i = #(self.options or {}), 1, -1 do
      if self.options[i][1] == name then return self.options[i][2] end
    end
    return nil, "not connected"
  end
  if not fd then return nil, "closed" end
  return core._sock_getoption(fd, name)
end

-- The options set on a master socket, once it is connected.
function apply_options(self)
  local fd = self.stream:get_extra_info("fd")
  for _, o in ipairs(self.options or {}) do core._sock_setoption(fd, o[1], o[2]) end
  self.options = nil
end

-- ---------------------------------------------------------------- server --

--- bind(host, port) -> 1, or nil, err: the socket listens from then on.
---@param host string
---@param port integer
---@return 1|nil
---@return string|nil err
function tcp:bind(host, port)
  check_tcp(self, "bind")
  host, port = check_hostport(host, port, "bind")
  in_task("tcp:bind")
  if self.state ~= "master" then return nil, "already bound" end
  if host == "*" then host = self.family == "inet6" and "::" or "0.0.0.0" end
  local list, err = addresses(self, host, port)
  if not list then return nil, err end
  local q = queues.Queue()
  self.accepted, self.waiters = q, {}
  local ok, sv = pcall(core.tcp_server, function(stream)
    return self:_park(stream)
  end, list[1].host, port, CHUNK, 32, true)
  if not ok then return nil, errstring(sv) end
  self.server, self.family = sv, family_of(list[1])
  return 1
end

-- A connection's handler: queues it for accept() and waits until its
-- socket is closed (the server closes the connection once it returns).
function tcp:_park(stream)
  if self.state == "closed" then return end
  local done = core.Future()
  self.accepted:put_nowait({stream, done})
  for f in pairs(self.waiters) do
    if not f:done() then f:set_result(true) end
  end
  core.await(done)
end

--- listen(backlog) -> 1: the socket becomes a server.
---@param backlog? integer
---@return 1
function tcp:listen(backlog)
  check_tcp(self, "listen")
  if backlog ~= nil then check_number(backlog, 2, "listen") end
  if not self.server then return nil, "not bound" end
  self.state = "server"
  return 1
end

local function accepted(entry)
  local c = new_tcp(nil, "client", entry[1])
  c.parked = entry[2]
  local host = c.stream:get_extra_info("sockname")
  c.family = type(host) == "string" and host:find(":") and "inet6" or "inet"
  return c
end

--- accept() -> a client socket, or nil, "timeout" / "closed".
---@return lasync.socket.tcp|nil client
---@return string|nil err
function tcp:accept()
  check_tcp(self, "accept")
  in_task("tcp:accept")
  if self.state ~= "server" then return nil, "closed" end
  local q = self.accepted
  if not q:empty() then return accepted(q:get_nowait()) end
  local entry, err = timed(self, q.get, q)
  if not entry then return nil, err end
  return accepted(entry)
end

--- bind(host, port, backlog) -> a listening server socket, or nil, err.
---@param host string
---@param port integer
---@param backlog? integer
---@return lasync.socket.tcp|nil server
---@return string|nil err
function M.bind(host, port, backlog)
  local s = M.tcp()
  local ok, err = s:bind(host, port)
  if not ok then return nil, err end
  s:listen(backlog)
  return s
end

--- connect(host, port, locaddr, locport, family) -> a connected
--- client socket (bound first to locaddr:locport if given), or nil, err.
---@param host string
---@param port integer
---@param locaddr? string
---@param locport? integer
---@param family "inet"|"inet6"|nil
---@return lasync.socket.tcp|nil client
---@return string|nil err
function M.connect(host, port, locaddr, locport, family)
  if locaddr ~= nil then check_string(locaddr, 3, "connect") end
  if locport ~= nil then locport = select(2, check_hostport("", locport, "connect")) end
  local s = family == "inet6" and M.tcp6() or family == "inet" and M.tcp4() or M.tcp()
  s.lhost, s.lport = locaddr, locaddr and (locport or 0)
  local ok, err = s:connect(host, port)
  if not ok then return nil, err end
  return s
end
--- connect4(host, port): connect over IPv4 only.
---@param host string
---@param port integer
---@return lasync.socket.tcp|nil client
---@return string|nil err
function M.connect4(host, port) return M.connect(host, port, nil, nil, "inet") end
--- connect6(host, port): connect over IPv6 only.
---@param host string
---@param port integer
---@return lasync.socket.tcp|nil client
---@return string|nil err
function M.connect6(host, port) return M.connect(host, port, nil, nil, "inet6") end

-- ------------------------------------------------------------------- udp --
-- Over lasync.open_datagram's endpoints (§9): setsockname binds one,
-- setpeername opens it again connected (from the same local address).

local open_datagram = require("lasync.datagram").open_datagram

---@class lasync.socket.udp
local udp, check_udp = M._class("udp{unconnected}")

local function new_udp(family)
  return setmetatable({family = family, block = -1, total = -1}, udp)
end

--- udp() (udp4, udp6): a new unconnected UDP object.
---@return lasync.socket.udp
function M.udp() return new_udp(nil) end
--- udp4(): an unconnected UDP object, IPv4 only.
---@return lasync.socket.udp
function M.udp4() return new_udp("inet") end
--- udp6(): an unconnected UDP object, IPv6 only.
---@return lasync.socket.udp
function M.udp6() return new_udp("inet6") end

function udp:__tostring()
  return ("udp{%s}: %p"):format(self.peer and "connected" or "unconnected", self)
end

--- class() -> "udp{unconnected}" or "udp{connected}".
---@return string
function udp:class()
  check_udp(self, "class")
  return self.peer and "udp{connected}" or "udp{unconnected}"
end

udp.settimeout, udp.gettimeout, TIMED[udp] = tcp.settimeout, tcp.gettimeout, true

local function any_host(family) return family == "inet6" and "::" or "0.0.0.0" end

-- (Re)opens the endpoint: opts for open_datagram; 1, or nil, err (and
-- then no endpoint).
local function reopen(self, opts)
  if self.ep then self.ep:close() end  -- its address is taken again
  self.ep = nil
  local ok, ep = pcall(open_datagram, opts)
  if not ok then return nil, errstring(ep) end
  self.ep = ep
  local host = ep:sockname()
  self.family = host:find(":") and "inet6" or "inet"
  return 1
end

--- setsockname(host, port) -> 1, or nil, err ("*": every interface).
---@param host string
---@param port integer
---@return 1|nil
---@return string|nil err
function udp:setsockname(host, port)
  check_udp(self, "setsockname")
  host, port = check_hostport(host, port, "setsockname")
  in_task("udp:setsockname")
  if self.ep then return nil, "already bound" end
  if host == "*" then host = any_host(self.family) end
  return reopen(self, {local_host = host, local_port = port})
end

--- setpeername(host, port) -> 1, or nil, err; setpeername("*")
--- disconnects.
---@param host string
---@param port? integer
---@return 1|nil
---@return string|nil err
function udp:setpeername(host, port)
  check_udp(self, "setpeername")
  check_string(host, 1, "setpeername")
  in_task("udp:setpeername")
  local lhost, lport
  if self.ep then lhost, lport = self.ep:sockname() end
  if host == "*" then
    self.peer = nil
    return reopen(self, {local_host = lhost or any_host(self.family), local_port = lport or 0})
  end
  host, port = check_hostport(host, port, "setpeername")
  local ok, err = reopen(self, {local_host = lhost, local_port = lport,
                               remote_host = host, remote_port = port})
  if ok then self.peer = {host, port} end
  return ok, err
end

-- The endpoint of an open socket; sendto binds one first if need be.
local function endpoint(self, fname, family)
  in_task("udp:" .. fname)
  if self.closed then return nil, "closed" end
  if not self.ep and family then
    local ok, err = reopen(self, {local_host = any_host(family), local_port = 0})
    if not ok then return nil, err end
  end
  return self.ep or nil, "closed"
end

local function sent(data, ok, err)
  if ok then return #data end
  return nil, errstring(err)
end

--- send(data) -> bytes sent, or nil, err (a connected socket).
---@param data string
---@return integer|nil sent
---@return string|nil err
function udp:send(data)
  check_udp(self, "send")
  check_string(data, 2, "send")
  local ep, err = endpoint(self, "send")
  if not ep then return nil, err end
  if not self.peer then return nil, "not connected" end
  return sent(data, pcall(ep.send, ep, data))
end

--- sendto(data, ip, port) -> bytes sent, or nil, err (an unconnected one).
---@param data string
---@param ip string
---@param port integer
---@return integer|nil sent
---@return string|nil err
function udp:sendto(data, ip, port)
  check_udp(self, "sendto")
  check_string(data, 2, "sendto")
  check_string(ip, 3, "sendto")
  port = math.tointeger(port)
  if not port or port < 0 or port > 65535 then argerror(4, "sendto", "port (integer from 0 to 65535) expected") end
  if self.peer then return nil, "already connected" end
  local ep, err = endpoint(self, "sendto", ip:find(":") and "inet6" or "inet")
  if not ep then return nil, err end
  return sent(data, pcall(ep.sendto, ep, data, ip, port))
end

-- A datagram (data, host, port) under the timeout, or nil, err.
local function datagram(self, fname, size)
  if size ~= nil then checks.integer(size, 2, fname, 0, nil, "integer") end
  local ep, err = endpoint(self, fname)
  if not ep then return nil, err end
  local t = self.block
  if self.total >= 0 and (t < 0 or self.total < t) then t = self.total end
  local ok, data, host, port
  local held = self.held  -- what select took to see it was readable
  self.held = nil
  if held then ok, data, host, port = table.unpack(held, 1, 4)
  elseif t == 0 then ok, data, host, port = pcall(core._datagram_poll, ep)
  elseif t < 0 then ok, data, host, port = pcall(ep.recvfrom, ep)
  else ok, data, host, port = pcall(combinators.wait_for, function() return ep:recvfrom() end, t) end
  if not ok then return nil, errstring(data) end
  if data == nil then return nil, "timeout" end
  size = size or M._DATAGRAMSIZE
  return #data > size and data:sub(1, size) or data, host, port
end

--- receive(size) -> a datagram (cut to size), or nil, err.
---@param size? integer
---@return string|nil data
---@return string|nil err
function udp:receive(size)
  check_udp(self, "receive")
  local data, err = datagram(self, "receive", size)
  if data then return data end
  return nil, err
end

--- receivefrom(size) -> a datagram, the sender's ip and port, or nil, err.
---@param size? integer
---@return string|nil data
---@return string ip_or_err
---@return integer|nil port
function udp:receivefrom(size)
  check_udp(self, "receivefrom")
  return datagram(self, "receivefrom", size)
end

--- getsockname() -> ip, port, family, or nil, err.
---@return string|nil ip
---@return string port
---@return string family
function udp:getsockname()
  check_udp(self, "getsockname")
  if not self.ep or self.closed then return nil, "not bound" end
  local host, port = self.ep:sockname()
  return host, tostring(port), self.family  -- a string, as LuaSocket's
end

--- getpeername() -> ip, port, family, or nil, err.
---@return string|nil ip
---@return integer port
---@return string family
function udp:getpeername()
  check_udp(self, "getpeername")
  if not self.peer or self.closed then return nil, "not connected" end
  return self.peer[1], self.peer[2], self.family
end

--- getfamily() -> "inet" or "inet6".
---@return string|nil
function udp:getfamily()
  check_udp(self, "getfamily")
  return self.family or "inet"
end

--- close() -> 1.
---@return 1
function udp:close()
  check_udp(self, "close")
  if self.ep then self.ep:close() end
  self.closed = true
  return 1
end

--- getfd() -> the descriptor (-1 if none).
---@return integer
function udp:getfd()
  check_udp(self, "getfd")
  return self.ep and not self.closed and core._datagram_fd(self.ep) or -1
end

--- dirty() -> whether a datagram is held (select took it).
---@return boolean
function udp:dirty()
  check_udp(self, "dirty")
  return false
end

--- setoption(name, value), getoption(name): as tcp's, once bound.
---@param name string
---@param value any
---@return 1|nil
---@return string|nil err
function udp:setoption(name, value)
  check_udp(self, "setoption")
  check_option(name, value, "setoption")
  if not self.ep or self.closed then return nil, "closed" end
  return core._sock_setoption(core._datagram_fd(self.ep), name, value)
end

--- getoption(name) -> its value, or nil, err.
---@param name string
---@return any value
---@return string|nil err
function udp:getoption(name)
  check_udp(self, "getoption")
  check_option(name, nil, "getoption")
  if not self.ep or self.closed then return nil, "closed" end
  return core._sock_getoption(core._datagram_fd(self.ep), name)
end

-- ---------------------------------------------------------------- select --

-- Whether socket s would answer a receive (or accept) at once. A udp
-- socket's datagram is taken to know: it is held for the next receive.
-- A udp socket's datagram (or error), held for its next receive.
local function hold(s, ok, ...)
  if ok and ... == nil then return false end
  if not ok and core.CancelledError:is(...) then error((...), 0) end
  s.held = table.pack(ok, ...)
  return true
end

local function readable(s)
  if getmetatable(s) == udp then
    if s.held or s.closed or not s.ep then return s.held ~= nil or s.closed == true end
    return hold(s, pcall(core._datagram_poll, s.ep))
  end
  if getmetatable(s) ~= tcp then return false end
  if s.state == "closed" then return true end
  if s.state == "server" then return not s.accepted:empty() end
  return s.stream ~= nil and (core._sock_ready(s.stream))
end

local function writable(s)
  return getmetatable(s) == tcp and s.state == "client"
end

local function ready(list, test)
  local out = {}
  for _, s in ipairs(list or {}) do
    if test(s) then
      out[#out + 1] = s
      out[s] = true
    end
  end
  return out
end

-- Waits until one of recvt is readable: a task per client waits for its
-- input, a server wakes the future itself.
local function wait_readable(recvt, timeout)
  local f, tasks, servers = core.Future(), {}, {}
  for _, s in ipairs(recvt) do
    if getmetatable(s) == tcp and s.state == "server" then
      s.waiters[f], servers[#servers + 1] = true, s
    elseif getmetatable(s) == tcp and s.stream then
      tasks[#tasks + 1] = core.spawn(function()
        core._sock_wait(s.stream)
        if not f:done() then f:set_result(true) end
      end)
    elseif getmetatable(s) == udp and s.ep and not s.closed then
      tasks[#tasks + 1] = core.spawn(function()
        hold(s, pcall(s.ep.recvfrom, s.ep))
        if not f:done() then f:set_result(true) end
      end)
    end
  end
  pcall(combinators.wait_for, f, timeout)
  for _, t in ipairs(tasks) do t:cancel() end
  for _, t in ipairs(tasks) do pcall(core.await, t) end
  for _, s in ipairs(servers) do s.waiters[f] = nil end
end

--- select(recvt, sendt, timeout) -> readable, writable (lists, with the
--- sockets also as keys), or with "timeout" third when none is ready.
---@param recvt? table
---@param sendt? table
---@param timeout? number
---@return table readable
---@return table writable
---@return string|nil err "timeout"
function M.select(recvt, sendt, timeout)
  if recvt ~= nil then checks.check(type(recvt) == "table", recvt, 1, "select", "table or nil") end
  if sendt ~= nil then checks.check(type(sendt) == "table", sendt, 2, "select", "table or nil") end
  if timeout ~= nil then check_number(timeout, 3, "select") end
  in_task("select")
  local r, w = ready(recvt, readable), ready(sendt, writable)
  if #r == 0 and #w == 0 and (timeout == nil or timeout < 0 or timeout > 0) and recvt and #recvt > 0 then
    wait_readable(recvt, (timeout == nil or timeout < 0) and nil or timeout)
    r = ready(recvt, readable)
  elseif #r == 0 and #w == 0 and timeout and timeout > 0 then
    core.sleep(timeout)
  end
  if #r == 0 and #w == 0 then return r, w, "timeout" end
  return r, w
end

-- ------------------------------------------------------------------- dns --

---@class lasync.socket.dns
local dns = {}
M.dns = dns

-- The addresses of name, IPv4 ones first (as LuaSocket's toip).
local function lookup(name, fname)
  check_string(name, 1, fname)
  in_task("dns." .. fname)
  local ok, list = pcall(core.getaddrinfo, name, 0)
  if not ok then
    if not OSError:is(list) or core.CancelledError:is(list) then error(list, 0) end
    return nil, "host not found"
  end
  local ips, seen = {}, {}
  for pass = 1, 2 do
    for _, a in ipairs(list) do
      if (a.family == "inet") == (pass == 1) and not seen[a.host] then
        ips[#ips + 1], seen[a.host] = a.host, true
      end
    end
  end
  return ips
end

--- toip(name) -> the first address, {name=, alias={}, ip={...}}.
---@param name string
---@return string|nil ip
---@return table|string info_or_err
function dns.toip(name)
  local ips, err = lookup(name, "toip")
  if not ips then return nil, err end
  return ips[1], {name = name, alias = {}, ip = ips}
end

--- tohostname(address) -> the name (as given: no reverse lookup is made
--- but by /etc/hosts' localhost), {name=, alias={}, ip={...}}.
---@param addr string
---@return string name
---@return table info
function dns.tohostname(addr)
  local ips, err = lookup(addr, "tohostname")
  if not ips then return nil, err end
  local name = (addr == "127.0.0.1" or addr == "::1") and "localhost" or addr
  return name, {name = name, alias = {}, ip = ips}
end

--- getaddrinfo(name) -> {{family=, addr=}, ...}, as LuaSocket's.
---@param name string
---@return table|nil
---@return string|nil err
function dns.getaddrinfo(name)
  local ips, err = lookup(name, "getaddrinfo")
  if not ips then return nil, err end
  local out = {}
  for i, ip in ipairs(ips) do
    out[i] = {family = ip:find(":") and "inet6" or "inet", addr = ip}
  end
  return out
end

--- gethostname() -> this host's name.
---@return string
function dns.gethostname()
  local f = io.open("/proc/sys/kernel/hostname")
  local name = f and f:read("l")
  if f then f:close() end
  return name or "localhost"
end

-- ------------------------------------------------------ try, protect, … --

--- skip(n, ...) -> the values after the first n.
---@param n integer
---@param ... any
---@return any ...
function M.skip(n, ...)
  check_number(n, 1, "skip")
  return select(n + 1, ...)
end

-- The error newtry raises: protect catches it, other errors go through.
local Failure = {}

--- newtry(finalizer) -> try(ok, ...): returns its arguments when ok is
--- truthy, else calls finalizer and raises the second (for protect).
---@param finalizer? function
---@return fun(ok: any, ...): ...
function M.newtry(finalizer)
  if finalizer ~= nil then checks.callable(finalizer, 1, "newtry") end
  return function(...)
    if (...) then return ... end
    if finalizer then pcall(finalizer) end
    error(setmetatable({(select(2, ...))}, Failure), 0)
  end
end

local function caught(ok, ...)
  if ok then return ... end
  local e = ...
  if getmetatable(e) == Failure then return nil, e[1] end
  error(e, 0)
end

--- protect(fn) -> a function that returns nil, err for what try raised.
---@param fn function
---@return function
function M.protect(fn)
  checks.callable(fn, 1, "protect")
  return function(...) return caught(pcall(fn, ...)) end
end

M.try = M.newtry()

-- ---------------------------------------------------- sinks and sources --
-- As LuaSocket's socket.lua: ltn12 sinks and sources over a socket.

M.sinkt, M.sourcet = {}, {}

M.sinkt["close-when-done"] = function(sock)
  return setmetatable({}, {__call = function(_, chunk)
    if not chunk then
      sock:close()
      return 1
    end
    return sock:send(chunk)
  end})
end

M.sinkt["keep-open"] = function(sock)
  return setmetatable({}, {__call = function(_, chunk)
    if chunk then return sock:send(chunk) end
    return 1
  end})
end

M.sinkt.default = M.sinkt["keep-open"]

--- sink(mode, sock): an ltn12 sink sending to sock.
---@param mode string
---@param sock lasync.socket.tcp
---@return function
function M.sink(mode, sock) return M.choose(M.sinkt)(mode, sock) end

M.sourcet["by-length"] = function(sock, length)
  return setmetatable({}, {__call = function()
    if length <= 0 then return nil end
    local chunk, err = sock:receive(math.min(M.BLOCKSIZE, length))
    if err then return nil, err end
    length = length - #chunk
    return chunk
  end})
end

M.sourcet["until-closed"] = function(sock)
  local done = false
  return setmetatable({}, {__call = function()
    if done then return nil end
    local chunk, err, partial = sock:receive(M.BLOCKSIZE)
    if not err then return chunk end
    if err == "closed" then
      sock:close()
      done = true
      return partial
    end
    return nil, err
  end})
end

M.sourcet.default = M.sourcet["until-closed"]

--- source(mode, sock, ...): an ltn12 source reading from sock.
---@param mode string
---@param ... any
---@return function
function M.source(mode, ...) return M.choose(M.sourcet)(mode, ...) end

--- choose(table) -> f(name, ...) calling table[name] (default: "default").
---@param tbl table
---@return function
function M.choose(tbl)
  return function(name, opt1, opt2)
    if type(name) ~= "string" then name, opt1, opt2 = "default", name, opt1 end
    local f = tbl[name or "nil"]
    if not f then error("unknown key (" .. tostring(name) .. ")", 3) end
    return f(opt1, opt2)
  end
end

-- ------------------------------------------------------- asyncio's sock_* --

-- Calls s:method(...) with no timeout, as asyncio's sock_* wait whatever
-- the socket's mode: err raised as OSError.
local function untimed(s, method, ...)
  local block, total = s.block, s.total
  s.block, s.total = -1, -1
  local a, b = s[method](s, ...)
  s.block, s.total = block, total
  if not a then error(OSError(b), 3) end
  return a
end

--- Adds sock_accept, sock_recv, sock_sendall and sock_connect to loops.
local function add_loop_methods()
  local lp = core.new_loop()
  local methods = getmetatable(lp).__methods
  lp:close()
  ---@param _ lasync.Loop
  ---@param s lasync.socket.tcp a lasync.socket object
  function methods.sock_accept(_, s)
    local c = untimed(s, "accept")
    return c, {c:getpeername()}
  end
  ---@param _ lasync.Loop
  ---@param s lasync.socket.tcp a lasync.socket object
  ---@param n integer
  function methods.sock_recv(_, s, n)
    checks.integer(n, 2, "sock_recv", 1, nil, "positive integer")
    local st = stream_of(s, "receive")
    if not st then error(OSError("closed"), 2) end
    local data, err, partial = receive(st, "s", math.min(n, CHUNK), -1, 0)
    if data then return data end
    if err == "closed" then return partial end
    error(OSError(err), 2)
  end
  ---@param _ lasync.Loop
  ---@param s lasync.socket.tcp a lasync.socket object
  ---@param data string
  function methods.sock_sendall(_, s, data) untimed(s, "send", data) end
  ---@param _ lasync.Loop
  ---@param s lasync.socket.tcp a lasync.socket object
  ---@param host string
  ---@param port integer
  function methods.sock_connect(_, s, host, port) untimed(s, "connect", host, port) end
end
add_loop_methods()

-- --------------------------------------------------------------- install --

-- socket.ssl: LuaSec's wrap (lua/lasync/socket/ssl.lua), loaded on use.
setmetatable(M, {__index = function(_, k)
  if k == "ssl" then return require "lasync.socket.ssl" end
end})

local saved
local NAMES = {"socket", "socket.core", "ssl"}

--- install(): require "socket" and "socket.core" give this module (and
--- "ssl" lasync.socket.ssl), so that LuaSocket's pure-Lua modules
--- (socket.http, socket.url, ltn12, ...) run on it. uninstall() undoes it.
function M.install()
  if saved then return end
  saved = {}
  for _, name in ipairs(NAMES) do
    saved[name] = {package.loaded[name], package.preload[name]}
    package.loaded[name] = name == "ssl" and M.ssl or M
  end
  for _, name in ipairs {"socket.http", "socket.smtp", "socket.ftp", "socket.tp"} do
    saved[name] = {package.loaded[name], package.preload[name]}
    package.loaded[name] = nil
  end
end

--- uninstall(): package.loaded as before install().
function M.uninstall()
  if not saved then return end
  for name, v in pairs(saved) do
    package.loaded[name], package.preload[name] = v[1], v[2]
  end
  saved = nil
end

return M
