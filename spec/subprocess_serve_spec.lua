--- Subprocesses inside `lasync serve` (scripts/lasync): a handler that runs
-- a command per connection in workers, and a child of the master's own
-- code, which the master's SIGCHLD reaping (waitpid of its workers' pids
-- only) must leave to its Process. The server itself is started with
-- create_subprocess_exec and stopped by its pid.
local lasync = require "lasync"
local helper = require "helper"

local ROOT = debug.getinfo(1, "S").source:match("^@(.-)spec/[^/]*$")
if ROOT == "" then ROOT = "./" end
local LASYNC = ROOT .. "scripts/lasync"

-- Starts `lasync serve script --workers 2`; returns the Process and the
-- port, once both workers listen. The log (stderr) is read to its end by
-- a task, whose result is the whole log.
local function serve(script)
  local p = lasync.create_subprocess_exec({LASYNC, "serve", script, "--workers", "2",
    "--listen", "127.0.0.1:0"}, {stderr = "pipe", stdin = "null", stdout = "null", cwd = ROOT})
  local port, listening, log = nil, lasync.Event(), {}
  local reader = lasync.spawn(function()
    for line in p.stderr:lines() do
      log[#log + 1] = line
      local n = select(2, table.concat(log, "\n"):gsub("listening on", ""))
      port = port or tonumber(line:match("listening on 127%.0%.0%.1:(%d+)"))
      if n == 2 then listening:set() end
    end
    p.stderr:close()
    return table.concat(log, "\n") .. "\n"
  end)
  local ok, err = pcall(lasync.wait_for, function() return listening:wait() end, 10)
  if not ok then
    p:kill()
    p:wait()
    reader:await()
    error(err, 0)
  end
  return p, port, reader, log
end

local function stop(p, reader)
  p:terminate()
  assert.equal(0, p:wait())
  return reader:await()
end

local function ask(port, line)
  local r, w = lasync.open_connection("127.0.0.1", port)
  w:write(line)
  local got = r:read()
  w:close()
  return got
end

describe("subprocesses in lasync serve", function()
  local scratch = helper.scratch()
  lazy_teardown(scratch.cleanup)

  it("a handler runs a command per connection in each of 2 workers", helper.async(function()
    local script = scratch.write("upper.lua", [[
local lasync = require "lasync"
return function(reader, writer)
  local line = reader:readline()
  local p = lasync.create_subprocess_exec({"sh", "-c", 'read line; echo "got $line"'},
                                         {stdin = "pipe", stdout = "pipe"})
  local out = p:communicate(line)
  writer:write(("%s exit %d pid %d\n"):format(out:gsub("\n", ""), p:wait(), p.pid))
end
]])
    local p, port, reader = serve(script)
    local ok, err = pcall(function()
      local fns = {}
      for i = 1, 20 do fns[i] = function() return ask(port, "hello " .. i .. "\n") end end
      local answers = {lasync.gather(table.unpack(fns))}
      for i = 1, 20 do assert.matches("^got hello " .. i .. " exit 0 pid %d+\n$", answers[i]) end
    end)
    local log = stop(p, reader)
    assert(ok, err)
    assert.matches("stopped\n$", log)
    assert.not_matches("error", log)
  end, 40))

  it("the master reaps its workers only: a child of its own code keeps its status", helper.async(function()
    -- The script's top level runs in the master (it checks that the script
    -- loads) and in each worker. There it makes the master's SIGCHLD
    -- handler run while a child C has ended but is not reaped yet: the
    -- loop is held (os.execute) while D ends, so that in the next pass the
    -- task T woken by D's EOF runs first and holds the loop again while C
    -- ends, before the SIGCHLD handler (D's) runs; a waitpid(-1) there
    -- would take C, whose status would then be lost (255).
    local script = scratch.write("master_child.lua", [[
local lasync = require "lasync"
local core = require "lasync.core"
lasync.spawn(function()
  local c = lasync.create_subprocess_exec({"sh", "-c", "sleep 0.6; exit 7"})
  local d = lasync.create_subprocess_exec({"sleep", "0.1"}, {stdout = "pipe"})
  lasync.spawn(function()
    d.stdout:read()
    os.execute("sleep 1")
  end)
  lasync.sleep(0)
  os.execute("sleep 0.3")
  d:wait()
  io.stderr:write(("child of %d: %d\n"):format(core.sys.getpid(), c:wait()))
end)
return function(reader, writer) writer:write("ok\n") end
]])
    local p, port, reader, lines = serve(script)
    local ok, err = pcall(function()
      assert.equal("ok\n", ask(port, ""))
      local function reported()
        local _, n = table.concat(lines, "\n"):gsub("child of %d+: %-?%d+", "")
        return n
      end
      local deadline = lasync.time() + 20  -- a hang guard
      while reported() < 3 and lasync.time() < deadline do lasync.sleep(0.05) end
    end)
    local log = stop(p, reader)
    assert(ok, err)
    assert.matches("child of " .. p.pid .. ": 7\n", log, 1, true)
    local _, n = log:gsub("child of %d+: 7\n", "")
    assert.equal(3, n)  -- the master and the two workers
  end, 40))
end)
