--- Runs case INDEX of socklibs.compat_cases on Debian's LuaSocket, with
-- the peer's ports, and prints its results as a Lua literal:
--   lua5.4 spec/socklibs/luasocket_case.lua INDEX TCP UDP CLOSED
-- (with spec/ on LUA_PATH). A process of its own, as LuaSocket blocks and
-- its loading ignores SIGPIPE for the whole process.
local socket = require "socket"
local cases = require "socklibs.compat_cases"

local i, tcp, udp, closed = tonumber(arg[1]), tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4])
io.write(cases.literal(cases[i].fn(socket, {tcp = tcp, udp = udp, closed = closed})))
