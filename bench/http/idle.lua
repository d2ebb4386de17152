--- bench/http/idle.lua PORT N HOLD: opens N keep-alive connections to
-- 127.0.0.1:PORT, 200 at a time, sends `GET /` on each and reads the whole
-- response, prints `ready conns=C answered=A` and holds them idle for HOLD
-- seconds (at most 120), then closes them and exits. The server's RSS is
-- read from /proc by the caller while they are held (bench/http_peers.sh).
local lasync = require "lasync"

local port, n, hold = tonumber(arg[1]), tonumber(arg[2] or 10000), tonumber(arg[3] or 20)
assert(port and n and hold, "usage: idle.lua PORT N HOLD")
hold = math.min(hold, 120)
local REQ = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

lasync.run(function()
  local held, answered, failed = {}, 0, 0
  local function one()
    local ok, r, w = pcall(lasync.open_connection, "127.0.0.1", port)
    if not ok then failed = failed + 1 return end
    held[#held + 1] = w
    local ok2 = pcall(function()
      w:write(REQ)
      local head = r:readuntil("\r\n\r\n")
      local len = tonumber(head:lower():match("\r\ncontent%-length:%s*(%d+)"))
      r:readexactly(assert(len, "no Content-Length"))
    end)
    if ok2 then answered = answered + 1 else failed = failed + 1 end
  end
  local i = 0
  while i < n do
    local batch = {}
    for _ = 1, math.min(200, n - i) do batch[#batch + 1] = lasync.spawn(one) end
    for _, t in ipairs(batch) do t:await() end
    i = i + #batch
  end
  io.stdout:write(("ready conns=%d answered=%d failed=%d\n"):format(#held, answered, failed))
  io.stdout:flush()
  lasync.sleep(hold)
  for _, w in ipairs(held) do w:close() end
end)
