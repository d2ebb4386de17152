--- Shared by spec/socket_compat_spec.lua and spec/socket_libs_spec.lua:
-- Debian's LuaSocket in a process of its own, the Python peers, redis-server,
-- and install() undone after each spec.
local http_util = require "http_util"
local helper = require "helper"

local M = {}

local HERE = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"

--- Where Debian's lua-redis is: it ships for Lua 5.1 to 5.3 only, and
-- runs unchanged on 5.4.
M.REDIS_PATH = "/usr/share/lua/5.3/?.lua"


--- The results of case i of socklibs.compat_cases on Debian's LuaSocket,
-- run by luasocket_case.lua in a process of its own, blocking (no loop):
-- loading LuaSocket ignores SIGPIPE in the whole process.
function M.on_luasocket(i, P)
  local out, code = helper.shell(("env -u LD_PRELOAD %s %s %d %d %d %d 2>&1"):format(
    os.getenv("LASYNC_LUA") or "lua5.4", http_util.quote(HERE .. "luasocket_case.lua"),
    i, P.tcp, P.udp, P.closed))
  assert(code == 0, out)
  return assert(load("return " .. out, "=luasocket_case"))()
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- Makes t hold exactly what `saved` held, but for lasync's own modules
-- loaded meanwhile (lasync.socket keeps its state in them).
local function reset(t, saved)
  for k in pairs(t) do
    if saved[k] == nil and not k:match("^lasync") then t[k] = nil end
  end
  for k, v in pairs(saved) do t[k] = v end
end

--- Runs fn() with lasync.socket.install() done and Debian's lua-redis on
-- package.path; then puts package.loaded, preload, searchers and path back
-- as they were (even when fn raises), so that later specs see no change:
-- uninstall() (lasync.socket's own undo), then what it might have missed.
function M.installed(fn, ...)
  local loaded, preload = copy(package.loaded), copy(package.preload)
  local searchers, path = copy(package.searchers), package.path
  package.path = path .. ";" .. M.REDIS_PATH
  local lsocket = require "lasync.socket"
  lsocket.install()
  assert(require "socket" == lsocket and require "socket.core" == lsocket,
         "install(): require \"socket\" does not give lasync.socket")
  local res = table.pack(pcall(fn, ...))
  lsocket.uninstall()
  reset(package.loaded, loaded)
  reset(package.preload, preload)
  for i = 1, math.max(#package.searchers, #searchers) do package.searchers[i] = searchers[i] end
  package.path = path
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

--- Starts the scripted peer (compat_peer.py); returns {tcp=, udp=,
-- closed=, stop=}: its ports and a function that kills it by PID.
function M.start_peer()
  local scratch = helper.scratch()
  local p = http_util.start_python(scratch, "compat",
    "env -u LD_PRELOAD " .. http_util.PYTHON .. " " .. http_util.quote(HERE .. "compat_peer.py"))
  local f = assert(io.open(scratch.tmp("compat-port")))
  local tcp, udp, closed = f:read("n", "n", "n")
  f:close()
  scratch.cleanup()
  return {tcp = tcp, udp = udp, closed = closed, stop = p.stop}
end

--- A free TCP port on 127.0.0.1 (bound by Python, then released).
function M.free_port()
  local out = helper.shell("env -u LD_PRELOAD " .. http_util.PYTHON .. " -c 'import socket; s = socket.socket(); "
    .. "s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])'")
  return assert(tonumber(out), "no free port")
end

--- Starts redis-server on 127.0.0.1 and a free port, without persistence;
-- returns {port=, pid=, stop=} once it answers PING (stop kills it by PID).
function M.start_redis()
  local port = M.free_port()
  local p = assert(io.popen(("env -u LD_PRELOAD redis-server --port %d --bind 127.0.0.1 "
    .. "--save '' --appendonly no >/dev/null 2>&1 & echo $!"):format(port)))
  local pid = p:read("l")
  p:close()
  local stop = function() os.execute("kill " .. pid) end
  local _, up = helper.shell(("unset LD_PRELOAD; for i in $(seq 500); do redis-cli -p %d ping 2>/dev/null "
    .. "| grep -q PONG && exit 0; sleep 0.02; done; exit 1"):format(port))  -- 10 s at most
  if up == 0 then return {port = port, pid = pid, stop = stop} end
  stop()
  error("redis-server did not start on port " .. port)
end

return M
