--- The WebSocket echo of bench/ws_peers.sh, for `lasync serve --http`.
local http = require "lasync.http"

return function(req)
  local ws = http.websocket(req, {max_message_size = 1024 * 1024})
  while true do
    local data, kind = ws:receive()
    if not data then return end
    ws:send(data, kind)
  end
end
