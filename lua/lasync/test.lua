--- lasync.test: run a test body as the main task of a fresh loop, under
-- a real-time deadline, and fail on anything it leaves wrong (API §13).
--   it("...", lasync.test.async(function() ... end, {virtual_time = true}))
local lasync = require "lasync"
local checks = require "lasync.checks"

---@class lasync.test
local M = {}

M.TIMEOUT = 5

local RUN_OPTS = {
  timeout = checks.option("number", "a positive number", function(v) return v > 0 end),
  virtual_time = checks.BOOLEAN,
}

local function leftovers(me)
  local left = {}
  for _, t in ipairs(lasync.all_tasks()) do
    if t ~= me then left[#left + 1] = tostring(t) end
  end
  return left
end

local function describe_reports(list)
  local out = {}
  for _, ctx in ipairs(list) do
    out[#out + 1] = tostring(ctx.message) ..
      (ctx.exception ~= nil and (": " .. tostring(ctx.exception)) or "")
  end
  return table.concat(out, "; ")
end

-- The main task of M.run: fn under the deadline, then the checks.
local function main(fn, opts, reports)
  local loop, timed_out = lasync.get_running_loop(), false
  loop:set_exception_handler(function(_, ctx) reports[#reports + 1] = ctx end)
  local t = lasync.spawn(fn)
  local timeout = opts.timeout or M.TIMEOUT
  local h = loop:call_later(timeout, function()
    timed_out = true
    t:cancel("test deadline")
  end)
  if opts.virtual_time then loop:_set_virtual_time(true, h) end
  local res = table.pack(pcall(t.await, t))
  h:cancel()
  loop:_set_virtual_time(false)
  if timed_out then
    error(("test did not finish within %g s"):format(timeout), 0)
  end
  if not res[1] then error(res[2], 0) end
  local left = leftovers(lasync.current_task())
  if #left > 0 then error("tasks left pending: " .. table.concat(left, ", "), 0) end
  return table.unpack(res, 2, res.n)
end

--- Runs fn() as the main task of a fresh loop; returns its results or
--- raises when it fails, does not finish within opts.timeout seconds of
--- real time (default 5, also under virtual time), leaves a task pending
--- or sent the exception handler a report it did not expect (see
--- expect_report). opts.virtual_time: the clock jumps to the next timer
--- whenever every task waits and no I/O is ready.
---@param fn function
---@param opts? {timeout?: number, virtual_time?: boolean}
---@return any ... fn's results
function M.run(fn, opts)
  checks.callable(fn, 1, "run")
  local reports = {}  -- checked after the loop's close, which reports too
  local res = table.pack(lasync.run(main, fn, checks.options(opts, 2, "run", RUN_OPTS), reports))
  if #reports > 0 then
    error("unexpected reports to the exception handler: " .. describe_reports(reports), 0)
  end
  return table.unpack(res, 1, res.n)
end

--- A function for busted's `it` that runs fn with M.run(fn, opts).
---@param fn function
---@param opts? {timeout?: number, virtual_time?: boolean}
---@return function
function M.async(fn, opts)
  checks.callable(fn, 1, "async")
  checks.options(opts, 2, "async", RUN_OPTS)
  return function() return M.run(fn, opts) end
end

--- Inside a task: runs fn() and returns the list of the contexts it sent
--- to the exception handler (then fn's results); they are expected, so
--- M.run does not fail on them. Errors of fn propagate.
---@param fn function
---@return table[] reports
---@return any ... fn's results
function M.expect_report(fn)
  checks.callable(fn, 1, "expect_report")
  local loop, list = lasync.get_running_loop(), {}
  local prev = loop:get_exception_handler()
  loop:set_exception_handler(function(_, ctx) list[#list + 1] = ctx end)
  local res = table.pack(pcall(fn))
  loop:set_exception_handler(prev)
  if not res[1] then error(res[2], 0) end
  return list, table.unpack(res, 2, res.n)
end

return M
