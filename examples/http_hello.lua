--- http_hello.lua: the smallest HTTP handler. Serve it with
--   lasync serve examples/http_hello.lua --http --listen 127.0.0.1:8080
-- then `curl http://127.0.0.1:8080/?name=you`. The handler returns the
-- status, the body and the headers; lasync.http adds Content-Length, Date
-- and keeps the connection alive.
return function(req)
  local name = req.query:match("name=([^&]*)") or "world"
  return 200, ("hello, %s\n"):format(name), {["Content-Type"] = "text/plain"}
end
