--- lasync.socket.ssl: LuaSec's ssl.wrap over lasync's TLS streams (§8,
-- src/tls.c), for lasync.socket's tcp objects: wrap, sni, dohandshake,
-- then the socket's receive/send/close/... on the TLS connection.
-- LuaSec's parameters map onto lasync's TLS settings: mode, verify
-- ("none", "peer"), cafile, capath, certificate, key, protocol
-- ("tlsv1_2", "tlsv1_3", "any"), ciphers, alpn.
local core = require "lasync.core"
local checks = require "lasync.checks"
local socket = require "lasync.socket"
checks.internal()

local type, pcall, setmetatable, getmetatable, error = type, pcall, setmetatable, getmetatable, error

---@class lasync.socket.ssl
local M = {_VERSION = "1.3.2"}

local PROTOCOLS = {tlsv1_2 = "TLSv1.2", tlsv1_3 = "TLSv1.3"}

-- lasync's settings for LuaSec's params; server: whether mode is "server".
local function settings_of(params)
  checks.check(type(params) == "table", params, 1, "newcontext", "table of parameters")
  local mode = params.mode or "client"
  if mode ~= "client" and mode ~= "server" then
    checks.argerror(1, "newcontext", "params.mode must be \"client\" or \"server\"")
  end
  local verify = params.verify
  if type(verify) == "table" then verify = verify[1] end
  local s = {cafile = params.cafile, capath = params.capath,
             certfile = params.certificate, keyfile = params.key,
             ciphers = params.ciphers, alpn = params.alpn}
  if verify ~= nil then s.verify = verify ~= "none" end
  local v = PROTOCOLS[params.protocol]
  if v then s.min_version, s.max_version = v, v end
  return s, mode == "server"
end

local Context = socket._class("SSL:Context")

--- newcontext(params) -> a context for wrap (params as wrap's).
---@param params table
---@return table|nil context
---@return string|nil err
function M.newcontext(params)
  local settings, server = settings_of(params)
  local ok, ctx = pcall(core.tls_context, settings, "newcontext: params", server)
  if not ok then return nil, type(ctx) == "table" and ctx.message or ctx end
  return setmetatable({ctx = ctx, server = server}, Context)
end

local conn, check_conn = socket._class("SSL:Connection")

--- wrap(sock, params) -> a TLS connection over sock (a connected
--- lasync.socket tcp object), or nil, err. params: LuaSec's, or a context.
---@param sock table
---@param params table a LuaSec params table or a context
---@return table|nil conn
---@return string|nil err
function M.wrap(sock, params)
  local connected = type(sock) == "table" and type(sock.class) == "function"
    and sock:class() == "tcp{client}"
  checks.check(connected, sock, 1, "wrap", "connected lasync.socket tcp object")
  local ctx, err = params, nil
  if getmetatable(params) ~= Context then ctx, err = M.newcontext(params) end
  if not ctx then return nil, err end
  return setmetatable({sock = sock, ctx = ctx}, conn)
end

--- sni(name): the server name sent (and checked) at the handshake.
---@param name string the server name
function conn:sni(name)
  check_conn(self, "sni")
  checks.check(type(name) == "string", name, 2, "sni", "string")
  self.name = name
end

-- LuaSec's string for a handshake failure: the OpenSSL reason.
local function failure(e)
  if core.CancelledError:is(e) or not core.OSError:is(e) then error(e, 0) end
  if core.TimeoutError:is(e) then return "timeout" end
  return e.verify_message or e.message
end

-- A client checks the certificate for the sni name, else for the address
-- connected to (LuaSec checks no name: lasync's TLS always does).
local function handshake(self)
  local opts = not self.ctx.server
    and {server_hostname = self.name or (self.sock:getpeername())} or nil
  self.sock.stream:start_tls(self.ctx.ctx, opts)
end

--- dohandshake() -> true, or nil, err (under the socket's timeout).
---@return true|nil ok
---@return string|nil err
function conn:dohandshake()
  check_conn(self, "dohandshake")
  if not core.current_task() then
    checks.misuse("lasync.socket: ssl:dohandshake called outside a task")
  end
  if self.done then return true end
  local t = self.sock.block
  local ok, e
  if t < 0 then ok, e = pcall(handshake, self)
  else ok, e = pcall(require("lasync.combinators").wait_for, function() handshake(self) end, t) end
  if not ok then return nil, failure(e) end
  self.done = true
  return true
end

-- The socket's methods, on the TLS connection.
for _, name in ipairs {"receive", "send", "close", "settimeout", "gettimeout",
                       "getpeername", "getsockname", "getstats", "setstats",
                       "dirty", "getfd", "setoption", "getoption", "shutdown"} do
  conn[name] = function(self, ...)
    check_conn(self, name)
    return self.sock[name](self.sock, ...)
  end
end

local Cert = socket._class("X509:Certificate")
--- The certificate in PEM.
---@return string
function Cert:pem() return self.info.pem end
--- The subject, as an RFC 2253 string.
---@return string
function Cert:subject() return self.info.subject end
--- The issuer, as an RFC 2253 string.
---@return string
function Cert:issuer() return self.info.issuer end

--- getpeercertificate() -> the peer's certificate (pem(), subject() and
--- issuer() as RFC 2253 strings), or nil.
---@return table|nil
function conn:getpeercertificate()
  check_conn(self, "getpeercertificate")
  local info = self.done and self.sock.stream:get_extra_info("peercert")
  return info and setmetatable({info = info}, Cert) or nil
end

function conn:__tostring()
  return ("SSL connection: %p"):format(self)
end

socket.ssl = M
return M
