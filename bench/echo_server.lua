--- lasync's echo server for the peers' benchmark suite (make bench-echo):
-- one handler task per connection reads and writes back bytes until EOF,
-- as the py-asyncio streams row does (read 64 KiB, write, drain).
--
--   lua5.4 bench/echo_server.lua PORT     (listens on 127.0.0.1:PORT)
local lasync = require "lasync"

local port = math.tointeger(tonumber(arg[1]))
if not port then
  io.stderr:write("usage: lua5.4 bench/echo_server.lua PORT\n")
  os.exit(2)
end

-- The handler of examples/echo.lua, beside this folder.
local HERE = arg[0]:match("^(.*)/[^/]*$") or "."
local handle = dofile(HERE .. "/../examples/echo.lua")

lasync.run(function()
  local server = lasync.start_server(handle, "127.0.0.1", port, {backlog = 4096})
  io.stderr:write(("echo_server (lasync) on 127.0.0.1:%d\n"):format(port))
  server:serve_forever()
end)
