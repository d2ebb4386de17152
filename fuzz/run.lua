--- fuzz/run.lua: runs libFuzzer harnesses one after the other under one
-- progress line (bench/progress.lua) over all their executions, as
-- `make fuzz` does:
--
--   lua5.4 fuzz/run.lua RUNS 'HARNESS [ARG...]'...
--
-- Each harness runs as `HARNESS -runs=RUNS [ARG...]` (a shell command)
-- with its stderr read here: the counts of libFuzzer's status lines
-- ("#262144  pulse ...", "#1000000  DONE ...") move the progress (total:
-- harnesses x RUNS), every other line (its banner, a crash report) is
-- printed as it is. The first harness that fails ends the run with its
-- exit status (128 + the signal if one killed it).
local HERE = arg[0]:match("^(.*)/[^/]*$") or "."
package.path = HERE .. "/../bench/?.lua;" .. package.path
local progress = require "progress"

-- Status lines that only report new coverage: drawn on a terminal, not
-- printed one per line elsewhere (there are hundreds early in a run).
local QUIET = {NEW = true, REDUCE = true}

local function usage()
  io.stderr:write("usage: lua5.4 fuzz/run.lua RUNS 'HARNESS [ARG...]'...\n")
  os.exit(2)
end

--- The count and kind of a libFuzzer status line, or nil.
local function status(line)
  local n, kind = line:match("^#(%d+)%s+(%a+)")
  return tonumber(n), kind
end

--- The shell command of a harness with -runs=RUNS after its program.
local function command(harness, runs)
  local prog, rest = harness:match("^%s*(%S+)(.*)$")
  return ("%s -runs=%d%s 2>&1"):format(prog, runs, rest), prog:match("[^/]*$")
end

--- Runs harness i; returns the exit status of a failed run, or nil.
local function run(p, i, harness, runs)
  local cmd, name = command(harness, runs)
  local f = assert(io.popen(cmd))
  for line in f:lines() do
    local n, kind = status(line)
    if not n then
      p:note(line)
    elseif p.tty or not QUIET[kind] then
      p:set((i - 1) * runs + math.min(n, runs), ("%s: #%d %s"):format(name, n, kind))
    end
  end
  local ok, how, code = f:close()
  if ok then return nil end
  p:clear()
  p:note(("fuzz: %s failed (%s %d)"):format(name, how, code))
  return how == "signal" and 128 + code or code
end

local function main()
  local runs = math.tointeger(tonumber(arg[1]))
  if not runs or runs < 1 or not arg[2] then usage() end
  local p = progress.new((#arg - 1) * runs, "fuzz")
  for i = 2, #arg do
    local failed = run(p, i - 1, arg[i], runs)
    if failed then os.exit(failed) end
  end
  p:done()
end

main()
