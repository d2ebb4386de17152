--- bench/benchlib.lua: what the benchmarks of this folder share: shell
-- helpers, medians, running a figure in a fresh loop, the Python baselines
-- (availability, figures) and the report (header lines, Markdown tables).
-- A script loads it with its own folder on package.path:
--   package.path = HERE .. "/?.lua;" .. package.path
local lasync = require "lasync"
local progress = require "progress"

local M = {}

-- ------------------------------------------------------------ shell ------

function M.quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

--- The interpreter running the script (to start child processes with).
function M.interpreter()
  local i = -1
  while arg[i - 1] do i = i - 1 end
  return os.getenv("LASYNC_LUA") or arg[i]
end

--- Lines of a shell command's standard output (stderr discarded).
function M.lines_of(cmd)
  local p = io.popen(cmd .. " 2>/dev/null")
  local out = {}
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  return out
end

--- The first line a shell command prints, "?" if none.
function M.shell1(cmd)
  return M.lines_of(cmd)[1] or "?"
end

function M.succeeds(cmd)
  return os.execute(cmd .. " >/dev/null 2>&1") == true
end

function M.readable(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

-- ------------------------------------------------------------ figures ----

function M.median(t)
  local s = table.move(t, 1, #t, 1, {})
  table.sort(s)
  local m = #s // 2
  return #s % 2 == 1 and s[m + 1] or (s[m] + s[m + 1]) / 2
end

--- Run fn(n) as the main task of a fresh loop, after a full collection.
function M.in_loop(fn, n)
  collectgarbage(); collectgarbage()
  return lasync.run(fn, n)
end

--- REPEAT rounds of per_round steps under one progress line (stderr):
-- body(step) runs a round and calls step(what) as each step starts.
function M.rounds(name, rounds, per_round, body)
  local p = progress.new(rounds * per_round, "bench")
  for r = 1, rounds do
    body(function(what)
      p:step(("%s: %s, round %d/%d"):format(name, what, r, rounds))
    end)
  end
  p:done()
end

-- ------------------------------------------------------------ Python -----

--- What the Python baselines can use ({asyncio = , uvloop = }); the
-- second value says why when Python itself is missing.
--- `one KEY N`, for profilers (valgrind, perf): prints one figure.
-- figure(key) returns the default count and a function n -> seconds/op.
function M.run_one(key, n, figure)
  local default, run = figure(key)
  if not run then error("one: unknown figure " .. tostring(key)) end
  n = n or default
  print(("%s\t%d\t%.1f ns/op"):format(key, n, 1e9 * run(n)))
end

--- How many Python runtimes py (as python_available returns it) has.
function M.python_runtimes(py)
  return (py.asyncio and 1 or 0) + (py.uvloop and 1 or 0)
end

function M.python_available(python)
  if not M.succeeds(M.quote(python) .. " -c 'import asyncio'") then
    return {}, "no " .. python
  end
  return {asyncio = true, uvloop = M.succeeds(M.quote(python) .. " -c 'import uvloop'")}
end

--- Run a Python baseline printing "runtime<TAB>operation<TAB>value" lines
-- and call add(runtime .. "|" .. operation, value) for each.
function M.python_figures(cmd, add)
  for _, line in ipairs(M.lines_of(cmd)) do
    local rt, op, v = line:match("^(.-)\t(.-)\t([%d.]+)$")
    if rt then add(rt .. "|" .. op, tonumber(v)) end
  end
end

-- ------------------------------------------------------------ report -----

function M.fmt_int(x)
  local s = ("%.0f"):format(x)
  return (s:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", ""))
end

--- Print a Markdown table padded for the terminal; align is a string of
-- "l" and "r", one per column.
function M.print_table(align, header, rows)
  local w = {}
  for _, r in ipairs {header, table.unpack(rows)} do
    for i, c in ipairs(r) do w[i] = math.max(w[i] or 3, utf8.len(c)) end
  end
  local function line(r)
    local c = {}
    for i, s in ipairs(r) do
      local pad = (" "):rep(w[i] - utf8.len(s))
      c[i] = align:sub(i, i) == "l" and s .. pad or pad .. s
    end
    print("| " .. table.concat(c, " | ") .. " |")
  end
  line(header)
  local sep = {}
  for i = 1, #header do
    sep[i] = align:sub(i, i) == "l" and ("-"):rep(w[i] + 2)
             or ("-"):rep(w[i] + 1) .. ":"
  end
  print("|" .. table.concat(sep, "|") .. "|")
  for _, r in ipairs(rows) do line(r) end
end

--- The machine and software lines of a report's header: CPUs and kernel;
-- Lua, libevent and lasync (with the commit of the checkout at `here`);
-- Python and uvloop (py and why as python_available returned them).
function M.header_lines(here, python, py, why)
  local q = M.quote
  return {
    ("machine: %s CPUs, %s, kernel %s"):format(M.shell1("nproc"),
      M.shell1("sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1"),
      M.shell1("uname -r")),
    ("%s, libevent %s, lasync %s"):format(
      M.shell1(q(M.interpreter()) .. " -v"):match("^Lua [%d.]+") or _VERSION,
      M.shell1("pkg-config --modversion libevent_core"), lasync.VERSION
      .. ", commit " .. M.shell1("git -C " .. q(here) .. " describe --always --dirty")),
    ("python: %s, uvloop %s"):format(
      py.asyncio and M.shell1(q(python) .. " -V") or "n/a (" .. tostring(why) .. ")",
      py.uvloop and M.shell1(q(python) .. " -c 'import uvloop; print(uvloop.__version__)'")
        or py.asyncio and "n/a (install python3-uvloop)" or "n/a"),
  }
end

return M
