-- open_connection with local_addr = {host, 0} bound the port at bind(),
-- which reserves it for every destination: a source address then ran out
-- at its ephemeral port range even for connections to different servers,
-- and bind() slowed down quadratically on the way (bench/c10k.sh: 50,000
-- connections from three 127.0.0.x addresses took 107 s to open, most of
-- it in the kernel). The port is now left to connect()
-- (IP_BIND_ADDRESS_NO_PORT), which picks it per destination. Shown in a
-- network namespace of its own whose port range is two ports: four
-- connections to two servers fit.
local lasync = require "lasync"
local helper = require "helper"

local PROGRAM = [[
local lasync = require "lasync"
lasync.run(function()
  local function echo(r, w) w:write(r:read(10)) end
  local servers = {lasync.start_server(echo, "127.0.0.1", 5001),
                   lasync.start_server(echo, "127.0.0.1", 5002)}
  local ports = {}
  for i = 1, 4 do
    local r, w = lasync.open_connection("127.0.0.1", 5001 + i % 2,
                                        {local_addr = {"127.0.0.1", 0}})
    ports[#ports + 1] = select(2, w:get_extra_info("sockname"))
    w:write("x")
    assert(r:read(10) == "x")
  end
  table.sort(ports)
  print("ports " .. table.concat(ports, " "))
  for _, s in ipairs(servers) do s:close() end
end)
]]

local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

describe("open_connection with local_addr port 0 (regression)", function()
  it("picks the local port per destination", helper.async(function()
    -- ip and sysctl without the sanitizers' LD_PRELOAD (LeakSanitizer
    -- reports ip's own leak); lua5.4 with it.
    local p = lasync.create_subprocess_exec({"unshare", "-n", "sh", "-c",
      "env -u LD_PRELOAD ip link set lo up && " ..
      "env -u LD_PRELOAD sysctl -qw net.ipv4.ip_local_port_range='40000 40001' && " ..
      "exec lua5.4 -e " .. quote(PROGRAM)}, {stdout = "pipe", stderr = "pipe"})
    local out, err = p:communicate()
    local code = p:wait()
    if code ~= 0 and err:find("unshare", 1, true) then
      return pending("needs root for a network namespace: " .. err)
    end
    assert.equal(0, code, err)
    assert.equal("ports 40000 40000 40001 40001\n", out)
  end, 10))
end)
