--- The server of `make soak` (bench/soak.sh), for `lasync serve --workers N`:
-- serve's own port is the plain echo; each worker's on_start also starts,
-- on ports shared by the workers (reuse_port), a TLS echo and an HTTP
-- server with POST /echo (the body back), GET /big?n=N (N bytes, for the
-- peers that reset mid-read), /ws (a WebSocket echo) and /memory. Ports, the
-- certificate and the per-connection limits come from the environment
-- soak.sh sets: SOAK_TLS_PORT, SOAK_HTTP_PORT, SOAK_CERT, SOAK_KEY,
-- SOAK_READ_TIMEOUT, SOAK_WRITE_TIMEOUT, SOAK_HTTP_TIMEOUT.
local lasync = require "lasync"
local http = require "lasync.http"

local function env_number(name)
  return tonumber(os.getenv(name) or error(name .. " is not set", 0))
end

local ROOT = debug.getinfo(1, "S").source:match("^@(.-)bench/[^/]*$")
if ROOT == "" then ROOT = "./" end
-- The handlers of examples/echo.lua and of bench/ws_peers.sh's lasync row.
local echo = dofile(ROOT .. "examples/echo.lua")
local ws_echo = dofile(ROOT .. "bench/ws/echo_lasync.lua")

-- The TLS echo: start_server reports every handler error, so the errors
-- a peer causes (a reset, a broken pipe, a timeout of the limits) end the
-- connection quietly here, as serve does for its own port.
local function tls_echo(reader, writer)
  local ok, err = pcall(echo, reader, writer)
  if ok or lasync.ConnectionError:is(err) or lasync.TimeoutError:is(err) then return end
  error(err, 0)
end

-- A body of n bytes, the same as the client's check (soak_client.lua):
-- "0123456789" repeated and cut.
local function big_body(n)
  return ("0123456789"):rep(n // 10 + 1):sub(1, n)
end

-- "PID LUA_KB RSS_KB": this worker's Lua heap and RSS after a full
-- collection and the trim that serve makes every second (lua/lasync/serve.lua),
-- so RSS without the garbage the collector has not reached yet.
local function memory()
  local sys = require("lasync.core").sys
  collectgarbage()
  collectgarbage()
  sys.malloc_trim()
  local f = assert(io.open("/proc/self/status"))
  local rss = f:read("a"):match("VmRSS:%s*(%d+)")
  f:close()
  return ("%d %d %s"):format(sys.getpid(), math.floor(collectgarbage("count")), rss)
end

local function http_handler(req)
  if req.path == "/echo" and req.method == "POST" then return 200, req.body end
  if req.path == "/big" then
    local n = tonumber(req.query:match("n=(%d+)")) or 0
    return 200, big_body(math.min(n, 8 * 1024 * 1024))
  end
  if req.path == "/ws" then return ws_echo(req) end
  if req.path == "/memory" then return 200, memory() end
  return 404, "no such path\n"
end

local servers = {}

local function on_start()
  local limits = {read_timeout = env_number("SOAK_READ_TIMEOUT"),
                  write_timeout = env_number("SOAK_WRITE_TIMEOUT")}
  local ssl = lasync.ssl_context {certfile = os.getenv("SOAK_CERT"), keyfile = os.getenv("SOAK_KEY")}
  servers[1] = lasync.start_server(tls_echo, "127.0.0.1", env_number("SOAK_TLS_PORT"),
    {ssl = ssl, reuse_port = true, read_timeout = limits.read_timeout,
     write_timeout = limits.write_timeout})
  servers[2] = http.serve(http_handler, {host = "127.0.0.1", port = env_number("SOAK_HTTP_PORT"),
    reuse_port = true, timeout = env_number("SOAK_HTTP_TIMEOUT"),
    max_body_size = 4 * 1024 * 1024})
end

local function on_stop()
  for _, s in ipairs(servers) do s:close() end
end

return {handler = echo, on_start = on_start, on_stop = on_stop}
