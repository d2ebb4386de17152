-- wrk -s bench/http/pipeline.lua URL: every write sends PIPELINE (default
-- 16) `GET /` requests on the connection; wrk counts each response.
-- luacheck: globals wrk init request
local depth = tonumber(os.getenv("PIPELINE") or "16")
local req

function init()
  local r = {}
  for i = 1, depth do r[i] = wrk.format("GET", "/") end
  req = table.concat(r)
end

function request()
  return req
end
