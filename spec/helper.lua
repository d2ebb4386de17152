--- Spec helper: runs a spec body with lasync.test.run (a fresh loop, a
-- deadline; fails on tasks pending or unexpected reports) and also fails
-- when the body leaves handles scheduled (callbacks, timers, fd and signal watchers, servers
-- serving, streams closing) or file descriptors open. A full collection
-- runs first, so what is only garbage is finalized, not reported.
--   local helper = require "helper"
--   it("...", helper.async(function() ... end))
--   it("...", helper.async(fn, {deadline = 10, fds = "why it may leak"}))
--   local reports = helper.reports()   -- inside a task: collects handler calls
local lasync = require "lasync"
local core = require "lasync.core"
local ltest = require "lasync.test"

local M = {}

M.DEADLINE = 5
-- Deadlines are hang guards: `make valgrind` and `make helgrind`, which run
-- 20-50x slower, stretch every one by LASYNC_SPEC_SLOWDOWN.
M.SLOWDOWN = tonumber(os.getenv("LASYNC_SPEC_SLOWDOWN")) or 1

local function collect()
  collectgarbage("collect")
  collectgarbage("collect")  -- what the first cycle's finalizers let go
end

-- What the running loop holds, as a set.
local function anchored()
  local set = {}
  for _, o in ipairs(core._anchored()) do set[o] = true end
  return set
end

-- A handle, named by its callback: a Lua function's place, or what a C
-- callback (server, stream) was scheduled with.
local function describe(h)
  local fn, arg = debug.getuservalue(h, 1), debug.getuservalue(h, 2)
  if type(fn) ~= "function" then return tostring(h) end
  local info = debug.getinfo(fn, "S")
  if info.what == "C" then return ("%s of %s"):format(tostring(h), tostring(arg)) end
  return ("%s calling %s:%d"):format(tostring(h), info.short_src, info.linedefined)
end

-- The handles the loop holds now and did not hold in `before`: live ones
-- only (a cancelled timer stays in the heap until its time), tasks aside.
local function handles_left(before)
  local left = {}
  for o in pairs(anchored()) do
    if not before[o] and not core.is_future(o) and not o:cancelled() then
      left[#left + 1] = describe(o)
    end
  end
  table.sort(left)
  return left
end

-- The set of this process's open file descriptors. Probes
-- /proc/self/fdinfo/N (opening it never touches the file itself) up to 256
-- past the highest found: descriptors are allocated lowest first.
local function open_fds()
  local set, misses, n = {}, 0, 0
  while misses < 256 do
    local f = io.open("/proc/self/fdinfo/" .. n)
    if f then
      f:close()
      set[n], misses = true, 0
    else
      misses = misses + 1
    end
    n = n + 1
  end
  return set
end

--- The set of this process's open file descriptors (fd -> true).
M.open_fds = open_fds

local function fds_left(before)
  local left = {}
  for fd in pairs(open_fds()) do
    if not before[fd] then left[#left + 1] = fd end
  end
  table.sort(left)
  return left
end

local function fail_if(list, what)
  if #list > 0 then error(what .. " left open: " .. table.concat(list, ", "), 0) end
end

-- fn wrapped with the handle check: what it leaves scheduled once it
-- returned, after a collection and a close under way (a stream's, run by
-- a finalizer) ended. lasync.test checks failures, deadline, tasks left
-- and unexpected reports.
local function checked(fn, opts)
  return function()
    local before = anchored()
    local res = table.pack(fn())
    collect()
    M.settle()
    if not opts.handles then fail_if(handles_left(before), "handles") end
    return table.unpack(res, 1, res.n)
  end
end

--- Runs fn() with lasync.test.run; returns its results or raises its
-- error, or an error naming what it left behind. opts (or a number, the
-- deadline): deadline (seconds, default M.DEADLINE, times M.SLOWDOWN);
-- virtual_time;
-- handles, fds: a reason why this spec may leave handles or descriptors
-- open (not checked).
function M.run(fn, opts)
  if type(opts) ~= "table" then opts = {deadline = opts} end
  collect()
  local fds = open_fds()
  local res = table.pack(ltest.run(checked(fn, opts), {
    timeout = (opts.deadline or M.DEADLINE) * M.SLOWDOWN, virtual_time = opts.virtual_time}))
  collect()
  if not opts.fds then fail_if(fds_left(fds), "file descriptors") end
  return table.unpack(res, 1, res.n)
end

--- A function for busted's `it` that runs fn as a task (see M.run).
function M.async(fn, opts)
  return function() return M.run(fn, opts) end
end

--- M.async on virtual time (lasync.test's virtual_time): the clock jumps
-- to the next timer whenever every task waits, so a spec of timers can
-- use delays of seconds and runs at once, in the same order.
function M.virtual(fn, opts)
  if type(opts) ~= "table" then opts = {deadline = opts} end
  return M.async(fn, setmetatable({virtual_time = true}, {__index = opts}))
end

--- Calls fn(...), which must raise; returns the error value.
function M.error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error, got none")
  return err
end

--- The whole content of the file at path.
function M.read_file(path)
  local f = assert(io.open(path))
  local s = f:read("a")
  f:close()
  return s
end

--- Writes text to the file at path.
function M.write_file(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

--- Runs a shell command; returns its standard output and exit status.
function M.shell(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local _, _, code = p:close()
  return out, code
end

--- Temporary files under one fresh prefix (s.base): s.tmp(name) names
-- one, s.write(name, text) writes one, s.cleanup() removes them all.
function M.scratch()
  local s, files = {base = os.tmpname()}, {}
  function s.tmp(name)
    local path = s.base .. "-" .. name
    files[path] = true
    return path
  end
  function s.write(name, text)
    local path = s.tmp(name)
    M.write_file(path, text)
    return path
  end
  function s.cleanup()
    for path in pairs(files) do os.remove(path) end
    os.remove(s.base)
  end
  return s
end

--- Kills (SIGKILL) every lasync process a `lasync serve` log names in
-- its "lasync[PID]" prefixes: the master and its workers, for a spec's
-- after_each to leave none running.
function M.kill_logged(log)
  local seen = {}
  for p in log:gmatch("lasync%[(%d+)%]") do
    if not seen[p] then os.execute("kill -KILL " .. p .. " 2>/dev/null") end
    seen[p] = true
  end
end

--- A function that sleeps delay seconds and then raises err.
function M.fail_after(delay, err)
  return function()
    lasync.sleep(delay)
    error(err, 0)
  end
end

--- Lets every ready task run until it suspends (a few loop iterations).
function M.settle()
  for _ = 1, 3 do lasync.sleep(0) end
end

--- An Event a timer sets in delay seconds: whether it is set later tells
-- whether that timer fired first (specs order events, never time them).
function M.after(delay)
  local ev = lasync.Event()
  lasync.get_running_loop():call_later(delay, ev.set, ev)
  return ev
end

--- Is err a lasync.CancelledError?
function M.is_cancelled(err)
  return lasync.CancelledError:is(err)
end

--- How many Futures and Tasks fn() makes, wherever they are made (C counts
-- them: core.Future, loop:create_future, spawn, a C wait's own future).
function M.futures_made(fn)
  local before = core._futures_made()
  fn()
  return core._futures_made() - before
end

--- Inside a running loop: replaces its exception handler by one that
-- collects every context into the returned list.
function M.reports()
  local list = {}
  lasync.get_running_loop():set_exception_handler(function(_, ctx)
    list[#list + 1] = ctx
  end)
  return list
end

return M
