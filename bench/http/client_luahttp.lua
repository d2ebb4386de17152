--- bench/http/client_luahttp.lua HOST PORT SECONDS [CONC]: lua-http 0.4's
-- client over keep-alive: CONC cqueues coroutines, each with one
-- http.client connection on which it makes a new stream per `GET /` in a
-- loop for SECONDS (at most 60), the body checked; prints `rps=...`.
-- lua-http's request:go() opens a connection per request, hence the
-- connection object. Debian installs lua-http for Lua 5.1/5.2 only; it runs
-- on 5.4 with /usr/share/lua/5.1 on LUA_PATH_5_4.
local cqueues = require "cqueues"
local client = require "http.client"
local headers = require "http.headers"

local host, port, secs, conc = arg[1], tonumber(arg[2]), tonumber(arg[3] or 5), tonumber(arg[4] or 1)
assert(host and port and secs, "usage: client_luahttp.lua HOST PORT SECONDS [CONC]")
secs = math.min(secs, 60)

local cq = cqueues.new()
local n = 0
local t0 = cqueues.monotime()
local stop = t0 + secs
for _ = 1, conc do
  cq:wrap(function()
    local conn = assert(client.connect{host = host, port = port, tls = false, version = 1.1})
    while cqueues.monotime() < stop do
      local h = headers.new()
      h:append(":method", "GET")
      h:append(":scheme", "http")
      h:append(":authority", host .. ":" .. port)
      h:append(":path", "/")
      local stream = assert(conn:new_stream())
      assert(stream:write_headers(h, true))
      local rh = assert(stream:get_headers())
      local body = assert(stream:get_body_as_string())
      assert(rh:get(":status") == "200" and body == "Hello, World!", "unexpected response")
      n = n + 1
    end
    conn:close()
  end)
end
assert(cq:loop())
local dt = cqueues.monotime() - t0
print(("rps=%.0f requests=%d seconds=%.2f conc=%d"):format(n / dt, n, dt, conc))
