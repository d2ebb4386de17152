-- Found by `make soak` (issue 16): a worker of its TLS echo spun at 100 %
-- CPU for good, serving no one. A TLS record that arrives in two TCP
-- segments leaves its first part in OpenSSL's buffer (SSL_has_pending is
-- true) while SSL_read has nothing to give; that was taken for input the
-- session holds, which makes the read event active at once: read_ready,
-- settle, active again, in one libevent pass that never ended (a direct
-- reader, read(n), cannot run to take the rest of the record). Here a relay
-- cuts the client's bytes to `lasync serve examples/echo.lua --tls-cert`,
-- a subprocess (a spinning one is killed, not waited for).
local lasync = require "lasync"
local helper = require "helper"

local ROOT = debug.getinfo(1, "S").source:match("^@(.-)spec/regress/[^/]*$")
if ROOT == "" then ROOT = "./" end
local TLS = ROOT .. "spec/fixtures/tls/"

-- `lasync serve` of the echo over TLS on a free port: the Process and the port.
local function serve_tls()
  local p = lasync.create_subprocess_exec({ROOT .. "scripts/lasync", "serve",
    ROOT .. "examples/echo.lua", "--listen", "127.0.0.1:0", "--tls-cert", TLS .. "server.pem",
    "--tls-key", TLS .. "server.key"}, {stderr = "pipe", stdin = "null", stdout = "null"})
  for line in p.stderr:lines() do
    local port = tonumber(line:match("listening on 127%.0%.0%.1:(%d+)"))
    if port then return p, port end
  end
  error("lasync serve did not start")
end

-- A relay to port that sends what its client sends 7 bytes at a time,
-- 10 ms apart: every TLS record comes in parts.
local function relay_one(cr, cw, port)
  local sr, sw = lasync.open_connection("127.0.0.1", port)
  local back = lasync.spawn(pcall, function()
    while true do
      local data = sr:read(65536)
      if data == "" then break end
      cw:write(data)
      cw:drain()
    end
    cw:close()
  end)
  while true do
    local data = cr:read(65536)
    if data == "" then break end
    for i = 1, #data, 7 do
      sw:write(data:sub(i, i + 6))
      sw:drain()
      lasync.sleep(0.01)
    end
  end
  sw:close()
  back:await()
end

-- (the server, killed at the end, breaks the relay's pipe)
local function splitting_relay(port)
  return lasync.start_server(function(cr, cw)
    local ok, err = pcall(relay_one, cr, cw, port)
    if not ok and not lasync.ConnectionError:is(err) then error(err, 0) end
  end, "127.0.0.1", 0)
end

describe("a TLS record that arrives in two parts (regression)", function()
  it("is read once its rest comes, without spinning the loop", helper.async(function()
    local p, port = serve_tls()
    local relay = splitting_relay(port)
    local _, relay_port = relay:sockname()
    local ok, got = pcall(lasync.timeout, 5 * helper.SLOWDOWN, function()
      local r, w = lasync.open_connection("127.0.0.1", relay_port,
        {ssl = {cafile = TLS .. "ca.pem"}})
      w:write("hello over TLS\n")
      local line = r:readline()
      w:close()
      return line
    end)
    p:kill()  -- a spinning server would not see a SIGTERM
    p:wait()
    p.stderr:close()
    relay:close()
    relay:wait_closed()
    assert.is_true(ok, tostring(got))
    assert.are.equal("hello over TLS\n", got)
  end, 15))
end)
