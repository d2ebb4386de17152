--- An echo server: `lasync serve examples/echo.lua --listen 127.0.0.1:8080`.
-- Each connection runs this handler in its own task: it reads like
-- sequential code while the loop serves every client at once.
return function(reader, writer)
  while true do
    local data = reader:read(65536)
    if data == "" then break end  -- the client closed its side
    writer:write(data)
    writer:drain()
  end
end
