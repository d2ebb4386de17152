--- A UDP echo server: each datagram goes back, whole, to whoever sent it.
--   scripts/lasync run examples/udp_echo.lua [HOST] [PORT]
-- (default 127.0.0.1 and 9999; port 0 picks one). Try it with Python:
--   python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM);
--     s.sendto(b"hello", ("127.0.0.1", 9999)); print(s.recv(100))'
-- Datagrams that come faster than they are answered wait in the endpoint's
-- queue (256 by default); past that the oldest are dropped, and counted.
local lasync = require "lasync"

local host, port = ...
local ep <close> = lasync.open_datagram {
  local_host = host or "127.0.0.1",
  local_port = math.tointeger(tonumber(port or 9999)),
}
print(("udp echo on %s port %d"):format(ep:sockname()))
io.stdout:flush()
while true do
  local data, from, from_port = ep:recvfrom()
  ep:sendto(data, from, from_port)
end
