--- lasync: asyncio for Lua 5.4 on libevent.
-- The facade: running a program, tasks, futures, re-exports of the C core
-- (lasync.core) and of the pure-Lua modules.
local core = require "lasync.core"
local checks = require "lasync.checks"
checks.internal()

-- For LuaLS (docs/editor.md): the facade has the names of the modules whose
-- names it copies below; the core's come through the assignments.
---@class lasync: lasync.combinators, lasync.sync, lasync.queues, lasync.streams
---@field create_task fun(fn: function, ...): lasync.Task spawn's alias
---@field open_datagram fun(opts: table): lasync.DatagramEndpoint lasync.datagram's
---@field create_subprocess_exec fun(argv: string[], opts?: table): lasync.Process
---@field create_subprocess_shell fun(cmd: string, opts?: table): lasync.Process
---@field dump_tasks fun(dest?: any): string lasync.dump's
---@field ContextVar fun(name: string, default?: any): lasync.ContextVar
---@field coroutine lasync.coroutine
---@field VERSION string
---@field Error lasync.ErrorClass
---@field CancelledError lasync.ErrorClass
---@field TimeoutError lasync.ErrorClass
---@field InvalidStateError lasync.ErrorClass
---@field IncompleteReadError lasync.ErrorClass
---@field LimitOverrunError lasync.ErrorClass
---@field QueueEmpty lasync.ErrorClass
---@field QueueFull lasync.ErrorClass
---@field QueueShutDown lasync.ErrorClass
---@field BrokenBarrierError lasync.ErrorClass
---@field TaskGroupError lasync.ErrorClass
---@field OSError lasync.ErrorClass
---@field ConnectionError lasync.ErrorClass
---@field ConnectionRefusedError lasync.ErrorClass
---@field ConnectionResetError lasync.ErrorClass
---@field ConnectionAbortedError lasync.ErrorClass
---@field BrokenPipeError lasync.ErrorClass
---@field SSLError lasync.ErrorClass
---@field SSLCertVerificationError lasync.ErrorClass
---@field HTTPError lasync.ErrorClass
local M = {}

M.VERSION = core.VERSION

for name, class in pairs(core._error_classes) do M[name] = class end

M.Future = core.Future
M.spawn = core.spawn
M.create_task = core.spawn
M.await = core.await
M.sleep = core.sleep
M.current_task = core.current_task
M.all_tasks = core.all_tasks
M.time = core.time
M.is_future = core.is_future
M.is_task = core.is_task
M.getaddrinfo = core.getaddrinfo
M.resp_encode = core.resp_encode
M.to_thread = core.to_thread
M.set_thread_pool_size = core.set_thread_pool_size
M.dump_tasks = require("lasync.dump").dump_tasks

--- The running loop; raises if there is none.
---@return lasync.Loop
function M.get_running_loop()
  return core.get_running_loop() or error("no running event loop", 2)
end

--- A new, not running loop (in debug mode when LASYNC_DEBUG=1).
---@return lasync.Loop
function M.new_event_loop()
  local loop = core.new_loop()
  if os.getenv("LASYNC_DEBUG") == "1" then loop:set_debug(true) end
  return loop
end

-- Cancel every task still pending and let them finish; errors other than
-- cancellations are reported, as asyncio.run does at shutdown. They are
-- cancelled before the loop runs again, so one never started never runs.
local function cancel_all(loop)
  local tasks = core.all_tasks(loop)
  if #tasks == 0 then return end
  for _, t in ipairs(tasks) do t:cancel() end
  loop:run_until_complete(function()
    for _, t in ipairs(tasks) do
      local ok, err = pcall(t.await, t)
      if not ok and not core.CancelledError:is(err) then
        loop:call_exception_handler {
          message = "unhandled error during lasync.run() shutdown",
          exception = err, task = t, traceback = t:traceback(),
        }
      end
    end
  end)
end

local function finish(ok, ...)
  if not ok then error((...), 0) end
  return ...
end

-- SIGINT cancels the main task; a second one, should the main task not
-- have ended, stops the loop (as asyncio's runner raises KeyboardInterrupt),
-- and the shutdown begins. Returns the count of SIGINTs so far.
local function on_sigint(loop, main)
  local n = 0
  loop:add_signal_handler("SIGINT", function()
    n = n + 1
    -- what every task waited on when it was interrupted, before cancelling
    if n == 1 and os.getenv("LASYNC_DEBUG") == "1" then M.dump_tasks() end
    if n == 1 then main:cancel("interrupted") else loop:stop() end
  end)
  return function() return n end
end

--- lasync.run(fn, ...): runs fn(...) as the main task of a new loop and
--- returns its results or raises its error.
---@param fn function the main task
---@param ... any its arguments
---@return any ... fn's results
function M.run(fn, ...)
  if core.get_running_loop() then
    error("lasync.run() cannot be called while an event loop is running: code"
      .. " in a task, like a script under 'lasync run', awaits directly (run a"
      .. " script that calls lasync.run with lua5.4)", 2)
  end
  checks.callable(fn, 1, "run")
  local loop = M.new_event_loop()
  local main = loop:create_task(fn, ...)
  local interrupts = on_sigint(loop, main)
  local res = table.pack(pcall(loop.run_until_complete, loop, main))
  loop:remove_signal_handler("SIGINT")
  if interrupts() > 1 and not main:done() then
    res = {n = 2, false, core.CancelledError("interrupted")}
  end
  cancel_all(loop)
  loop:close()
  return finish(table.unpack(res, 1, res.n))
end

M.coroutine = require "lasync.coroutine"
M.ContextVar = require("lasync.contextvars").ContextVar

for k, v in pairs(require "lasync.combinators") do M[k] = v end
for k, v in pairs(require "lasync.sync") do M[k] = v end
for k, v in pairs(require "lasync.queues") do M[k] = v end
for k, v in pairs(require "lasync.streams") do M[k] = v end
M.open_datagram = require("lasync.datagram").open_datagram
M.create_subprocess_exec = require("lasync.subprocess").create_subprocess_exec
M.create_subprocess_shell = require("lasync.subprocess").create_subprocess_shell

return M
