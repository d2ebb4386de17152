--- lasync.datagram: UDP endpoints (docs/reference.md §9), open_datagram.
-- The endpoint is lasync.core's (src/datagram.c); this module checks the
-- options and turns host names into addresses (lasync.getaddrinfo, which
-- never blocks), trying each local/remote pair of one family in turn.
local core = require "lasync.core"

local ipairs, pcall, error, type = ipairs, pcall, error, type
local OSError = core.OSError

local checks = require "lasync.checks"
checks.internal()
local argerror = checks.argerror

local M = {}

local HOST = checks.option("string", "a host name or address (non-empty string)",
                           function(v) return v ~= "" and not v:find("\0", 1, true) end)
local PORT = checks.option("number", "a port (integer from 0 to 65535)", function(v)
  local i = math.tointeger(v)
  return i ~= nil and i >= 0 and i <= 65535
end)
local OPTS = {local_host = HOST, local_port = PORT, remote_host = HOST,
              remote_port = PORT, reuse_port = checks.BOOLEAN,
              queue = checks.count(1048576)}

-- The addresses of host:port, for datagrams.
local function resolve(host, port)
  return core.getaddrinfo(host, port, {type = "dgram"})
end

-- The wildcard address of a family: the local host of an endpoint given
-- only a local port.
local ANY = {inet = "0.0.0.0", inet6 = "::"}

-- The (local, remote) address pairs to try, in getaddrinfo's order: each
-- remote with each local of its family. A local port alone binds the
-- wildcard address of the remote's family (IPv4 with no remote).
local function pairs_of(opts)
  local remotes = opts.remote_host and resolve(opts.remote_host, opts.remote_port)
  local locals = opts.local_host and resolve(opts.local_host, opts.local_port or 0)
  local list = {}
  for _, r in ipairs(remotes or {false}) do
    local family = r and r.family or nil
    local ls = locals or (opts.local_port and {{host = ANY[family or "inet"], port = opts.local_port}})
    for _, l in ipairs(ls or {false}) do
      if not (l and r) or l.family == r.family then list[#list + 1] = {l, r} end
    end
  end
  return list
end

local function check_opts(opts)
  checks.check(type(opts) == "table", opts, 1, "open_datagram", "table of options")
  opts = checks.options(opts, 1, "open_datagram", OPTS)
  if opts.remote_host and not opts.remote_port then
    argerror(1, "open_datagram", "opts.remote_port needed with opts.remote_host")
  end
  if opts.remote_port and not opts.remote_host then
    argerror(1, "open_datagram", "opts.remote_host needed with opts.remote_port")
  end
  if not (opts.local_host or opts.local_port or opts.remote_host) then
    argerror(1, "open_datagram", "opts.local_host, opts.local_port or opts.remote_host expected")
  end
  return opts
end

--- Opens a UDP endpoint: bound to local_host:local_port (port 0 picks
--- one), connected to remote_host:remote_port, or both. Names are looked up
--- without blocking. reuse_port sets SO_REUSEPORT; queue (default 256)
--- bounds the datagrams kept until recvfrom() takes them.
--- Raises an OSError with `code` when no address pair can be used: that of
--- the first pair.
---@param opts table local_host, local_port, remote_host, remote_port, reuse_port, queue
---@return lasync.DatagramEndpoint
function M.open_datagram(opts)
  opts = check_opts(opts)
  checks.task("open_datagram")
  local first
  for _, p in ipairs(pairs_of(opts)) do
    local l, r = p[1] or {}, p[2] or {}
    local ok, ep = pcall(core.datagram_open, l.host, l.port, r.host, r.port,
                         opts.reuse_port, opts.queue)
    if ok then return ep end
    if not OSError:is(ep) then error(ep, 0) end
    first = first or ep
  end
  if first then error(first, 0) end
  error(OSError("open_datagram: no local address of the remote host's family",
                {code = "EAFNOSUPPORT", errno = 97}), 0)
end

return M
