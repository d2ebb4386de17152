--- http_api.lua: a JSON key-value store over HTTP (Debian's lua-cjson).
--   lasync serve examples/http_api.lua --http --listen 127.0.0.1:8080
-- Routes:
--   GET    /keys          all the keys, as a JSON list
--   GET    /keys/NAME     the value stored under NAME (404 if none)
--   PUT    /keys/NAME     stores the request body (JSON) under NAME
--   DELETE /keys/NAME     removes it
--   GET    /numbers?n=N   a streamed response: N lines, one number each,
--                         sent as the client reads them (backpressure)
--   curl -X PUT -d '{"x": 1}' http://127.0.0.1:8080/keys/a
--   curl http://127.0.0.1:8080/keys/a
-- The store lives in the serving process (with --workers N each worker
-- has its own).
local cjson = require "cjson"

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

local KEY_ROUTES = {GET = get_key, PUT = put_key, DELETE = delete_key}

return function(req)
  if req.path == "/keys" and req.method == "GET" then return list_keys() end
  if req.path == "/numbers" and req.method == "GET" then return numbers(req) end
  local name = req.path:match("^/keys/([^/]+)$")
  if not name then return reply(404, {error = "no such route", path = req.path}) end
  local route = KEY_ROUTES[req.method]
  if not route then
    return reply(405, {error = "method not allowed", method = req.method},
      {["Content-Type"] = "application/json", Allow = "GET, PUT, DELETE"})
  end
  return route(name, req)
end
