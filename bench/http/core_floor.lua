--- bench/http/core_floor.lua PORT: the floor under lasync.http's server, the
-- C core alone: one task per connection looping core._http's read_request
-- and write_response (`Hello, World!`), with no timeouts, no Service, no
-- handler call. Not a server to use (no limits, no error responses); it
-- shows what http.lua's Lua layer costs (bench/README.md).
local lasync = require "lasync"
local core = require "lasync.core"
require "lasync.http"  -- gives the request objects their methods
local H = core._http

local port = assert(tonumber(arg[1]), "usage: core_floor.lua PORT")
local headers = {["Content-Type"] = "text/plain"}

lasync.run(function()
  local srv = lasync.start_server(function(stream)
    while true do
      local ok, req = pcall(H.read_request, stream, 16384)
      if not ok or not req then break end
      if not H.write_response(stream, req, 200, headers, "Hello, World!") then break end
    end
    stream:close()
  end, "127.0.0.1", port)
  srv:serve_forever()
end)
