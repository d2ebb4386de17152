--- run_command.lua: runs a few commands at once and streams their output
-- line by line as it comes, each line prefixed with the command's name;
-- then reports how each ended. stderr goes with stdout.
--   scripts/lasync run examples/run_command.lua
-- or with commands of your own, each one shell command:
--   scripts/lasync run examples/run_command.lua "ls /" "sleep 1; date" "exit 3"
-- The top level is the main task: it may await directly.
local lasync = require "lasync"

local commands = {...}
if #commands == 0 then
  commands = {"ls /usr", "for i in 1 2 3; do echo tick $i; sleep 0.2; done",
              "echo to stderr >&2; sleep 0.3; echo done"}
end

-- Stream one command's output with its prefix; its exit status.
local function run(cmd)
  local name = cmd:match("^%S+")
  local p = lasync.create_subprocess_shell(cmd, {stdout = "pipe", stderr = "stdout"})
  for line in p.stdout:lines() do
    print(("[%s] %s"):format(name, line))
  end
  p.stdout:close()
  return name, p:wait()
end

local tasks = {}
for i, cmd in ipairs(commands) do tasks[i] = lasync.spawn(run, cmd) end
for _, t in ipairs(tasks) do
  local name, code = t:await()
  print(("[%s] exited with %d"):format(name, code))
end
