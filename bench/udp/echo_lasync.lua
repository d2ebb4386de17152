--- lasync's UDP echo server for bench/udp_peers.sh:
--   lasync run bench/udp/echo_lasync.lua PORT [BATCH]
-- BATCH (1 to 32, default 32) is how many datagrams one recvmmsg/sendmmsg
-- takes: the bench runs it with 1 too, to show what batching is worth.
local lasync = require "lasync"
local core = require "lasync.core"

local port, batch = ...
if batch then core._datagram_batch(math.tointeger(tonumber(batch))) end
local ep <close> = lasync.open_datagram {local_host = "127.0.0.1",
                                         local_port = math.tointeger(tonumber(port))}
while true do
  local data, host, p = ep:recvfrom()
  ep:sendto(data, host, p)
end
