--- The handler of `make crash` and spec/serve_crash_spec.lua: greets each
-- connection with the serving worker's pid, "PID\n", then echoes lines, so
-- that the client knows which worker each of its connections lost. Each
-- line costs CRASH_WORK_MS ms of CPU (default 0.5), as a real handler's
-- work would: a busy worker leaves connections waiting in the accept
-- queue. The line "busy MS" costs MS ms (a worker stuck for a while).
local pid = require("lasync.core").sys.getpid()
local work = tonumber(os.getenv("CRASH_WORK_MS")) or 0.5

return function(reader, writer)
  writer:write(pid .. "\n")
  while true do
    local line = reader:readline()
    if line == "" then return end  -- the client closed its side
    local until_t = os.clock() + (tonumber(line:match("^busy (%d+)\n$")) or work) / 1000
    repeat until os.clock() >= until_t
    writer:write(line)
    writer:drain()
  end
end
