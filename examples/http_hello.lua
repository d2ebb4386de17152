--- http_hello.lua: the smallest HTTP handler, and the one the benchmarks
-- serve (GET / answers the 13 bytes `Hello, World!`). Serve it with
--   lasync serve examples/http_hello.lua --http --listen 127.0.0.1:8080
-- then `curl http://127.0.0.1:8080/?name=you`. The handler returns the
-- status, the body and the headers; lasync.http adds Content-Length, Date
-- and keeps the connection alive.
local headers = {["Content-Type"] = "text/plain"}

return function(req)
  local name = req.query:match("name=([^&]*)") or "World"
  return 200, ("Hello, %s!"):format(name), headers
end
