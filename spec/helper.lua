--- Spec helper: runs a spec body as the main task of a fresh loop under a
-- deadline and fails when the body leaves tasks pending.
--   local helper = require "helper"
--   it("...", helper.async(function() ... end))
--   local reports = helper.reports()   -- inside a task: collects handler calls
local lasync = require "lasync"

local M = {}

M.DEADLINE = 5

local function leftovers(me)
  local left = {}
  for _, t in ipairs(lasync.all_tasks()) do
    if t ~= me then left[#left + 1] = tostring(t) end
  end
  return left
end

--- Runs fn(...) in lasync.run with a deadline (seconds, default 5);
-- returns its results or raises its error.
function M.run(fn, deadline)
  deadline = deadline or M.DEADLINE
  return lasync.run(function()
    local loop, timed_out = lasync.get_running_loop(), false
    local t = lasync.spawn(fn)
    local h = loop:call_later(deadline, function()
      timed_out = true
      t:cancel("spec deadline")
    end)
    local res = table.pack(pcall(t.await, t))
    h:cancel()
    if timed_out then
      error(("spec did not finish within %g s"):format(deadline), 0)
    end
    local left = leftovers(lasync.current_task())
    if #left > 0 then
      error("tasks left pending: " .. table.concat(left, ", "), 0)
    end
    if not res[1] then error(res[2], 0) end
    return table.unpack(res, 2, res.n)
  end)
end

--- A function for busted's `it` that runs fn as a task (see M.run).
function M.async(fn, deadline)
  return function() return M.run(fn, deadline) end
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
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
    return path
  end
  function s.cleanup()
    for path in pairs(files) do os.remove(path) end
    os.remove(s.base)
  end
  return s
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

--- Is err a lasync.CancelledError?
function M.is_cancelled(err)
  return lasync.CancelledError:is(err)
end

--- How many Futures and Tasks fn() makes, wherever they are made (C counts
-- them: core.Future, loop:create_future, spawn, a C wait's own future).
function M.futures_made(fn)
  local core = require "lasync.core"
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
