--- Helpers of the WebSocket specs (spec/websocket/*_spec.lua): raw frames
-- written and read by hand, to send what no well-behaved peer sends.
--   local wsutil = require "ws_util"
local lasync = require "lasync"
local http = require "lasync.http"
local util = require "http_util"

local M = {}

--- A final frame of opcode op with payload data, masked (as a client's)
-- when mask is true.
function M.frame(op, data, mask, fin)
  local b0 = (fin == false and 0 or 0x80) | op
  local n, m = #data, mask and 0x80 or 0
  local head
  if n < 126 then head = string.pack("BB", b0, n | m)
  elseif n < 65536 then head = string.pack(">BBI2", b0, 126 | m, n)
  else head = string.pack(">BBI8", b0, 127 | m, n) end
  if not mask then return head .. data end
  local key = {0x12, 0x34, 0x56, 0x78}
  local out = {}
  for i = 1, n do out[i] = string.char(data:byte(i) ~ key[(i - 1) % 4 + 1]) end
  return head .. string.char(table.unpack(key)) .. table.concat(out)
end

--- The next frame from r (unmasked, as a server sends): opcode, payload.
function M.read_frame(r)
  local b0, b1 = string.unpack("BB", r:readexactly(2))
  local n = b1 & 0x7F
  if n == 126 then n = string.unpack(">I2", r:readexactly(2))
  elseif n == 127 then n = string.unpack(">I8", r:readexactly(8)) end
  return b0 & 0x0F, r:readexactly(n)
end

--- A raw WebSocket connection to 127.0.0.1:port: reader, writer and the
-- 101 response's head.
function M.handshake(port, path, key)
  local r, w = lasync.open_connection("127.0.0.1", port)
  w:write(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    .. "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n")
    :format(path, key or "AAAAAAAAAAAAAAAAAAAAAA=="))
  local head = r:readuntil("\r\n\r\n")
  return r, w, head
end

--- An echo server on 127.0.0.1 (opts as websocket's; special, if given,
-- a table of path -> function(ws, req) run instead of the echo): returns
-- the server, its port and seen, where seen[path] gets what the echo's
-- last receive() returned (code and reason), and seen[#seen + 1] too.
function M.echo_server(opts, special)
  local seen = {}
  local srv, port = util.serve(function(req)
    local ws = http.websocket(req, opts)
    if special and special[req.path] then return special[req.path](ws, req, seen) end
    while true do
      local data, kind, reason = ws:receive()
      if not data then
        seen[req.path], seen[#seen + 1] = {kind, reason}, {kind, reason}
        return
      end
      ws:send(data, kind)
    end
  end)
  return srv, port, seen
end

return M
