--- http_api.lua: a JSON key-value store over HTTP (Debian's lua-cjson).
--   lasync serve examples/http_api.lua --http --listen 127.0.0.1:8080
-- Routes:
--   GET    /keys          all the keys, as a JSON list
--   GET    /keys/NAME     the value stored under NAME (404 if none)
--   PUT    /keys/NAME     stores the request body (JSON) under NAME
--   DELETE /keys/NAME     removes it
--   GET    /numbers?n=N   a streamed response: N lines, one number each,
--                         sent as the client reads them (backpressure)
--   POST   /copy/NAME?from=URL[&as=NEW]
--                         fetches NAME from another store at URL (an
--                         upstream, through the HTTP client) and stores it
--                         here under NEW (default NAME)
--   curl -X PUT -d '{"x": 1}' http://127.0.0.1:8080/keys/a
--   curl http://127.0.0.1:8080/keys/a
-- The store lives in the serving process (with --workers N each worker
-- has its own).
local cjson = require "cjson"
local http = require "lasync.http"

local store = {}

local JSON = {["Content-Type"] = "application/json"}

local function reply(status, value, headers)
  return status, cjson.encode(value) .. "\n", headers or JSON
end

local function list_keys()
  local keys = {}
  for k in pairs(store) do keys[#keys + 1] = k end
  table.sort(keys)
  return reply(200, keys)
end

local function get_key(name)
  if store[name] == nil then return reply(404, {error = "no such key", key = name}) end
  return 200, store[name] .. "\n", JSON
end

local function put_key(name, req)
  local ok, value = pcall(cjson.decode, req.body)
  if not ok then return reply(400, {error = "the body is not JSON"}) end
  local created = store[name] == nil
  store[name] = cjson.encode(value)
  return reply(created and 201 or 200, {key = name})
end

local function delete_key(name)
  if store[name] == nil then return reply(404, {error = "no such key", key = name}) end
  store[name] = nil
  return 204, ""
end

-- Streams n lines: req:write suspends while the client is not reading, so
-- a large n costs no memory.
local function numbers(req)
  local n = tonumber(req.query:match("n=(%d+)")) or 10
  req:start_response(200, {["Content-Type"] = "text/plain"})
  for i = 1, n do req:write(i .. "\n") end
  req:finish()
end

-- The handler awaits the upstream; the server's other connections go on
-- meanwhile. An upstream that fails or does not have the key is a 502.
local function copy_key(name, req)
  local from = req.query:match("from=([^&]+)")
  if not from then return reply(400, {error = "from=URL is needed"}) end
  local ok, res = pcall(http.get, from .. "/keys/" .. name, {timeout = 5})
  if not ok then return reply(502, {error = "upstream failed: " .. tostring(res)}) end
  if res.status ~= 200 then return reply(502, {error = "upstream answered " .. res.status}) end
  local as = req.query:match("as=([^&]+)") or name
  store[as] = res.body:gsub("\n$", "")
  return reply(200, {key = as})
end

local KEY_ROUTES = {GET = get_key, PUT = put_key, DELETE = delete_key}

return function(req)
  if req.path == "/keys" and req.method == "GET" then return list_keys() end
  if req.path == "/numbers" and req.method == "GET" then return numbers(req) end
  local copied = req.path:match("^/copy/([^/]+)$")
  if copied and req.method == "POST" then return copy_key(copied, req) end
  local name = req.path:match("^/keys/([^/]+)$")
  if not name then return reply(404, {error = "no such route", path = req.path}) end
  local route = KEY_ROUTES[req.method]
  if not route then
    return reply(405, {error = "method not allowed", method = req.method},
      {["Content-Type"] = "application/json", Allow = "GET, PUT, DELETE"})
  end
  return route(name, req)
end
